//! The measured quality of a checkpoint's cells, shown beside the demo's latencies: the
//! `odelt eval --json` lines of its evaluation, kept in the checkpoint folder as
//! [`QUALITY_FILE`] (the shipped model's are EXPERIMENTS.md's tables).

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

pub const QUALITY_FILE: &str = "eval.jsonl";

/// What the demo shows of one evaluated cell.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Quality {
    pub length: u32,
    /// The engines' precision (`fp32`, `int8`, …).
    #[serde(default = "fp32")]
    pub precision: String,
    /// As given to `odelt eval --solvers`, e.g. `euler:4`.
    pub solver: String,
    pub fd: f64,
    pub fd_ci: Option<[f64; 2]>,
    pub knn_precision: f64,
    pub knn_recall: f64,
}

impl Quality {
    /// `FD 1.59 (1.52-1.66)`.
    pub fn caption(&self) -> String {
        match self.fd_ci {
            Some([lo, hi]) => format!("FD {:.2} ({lo:.2}-{hi:.2})", self.fd),
            None => format!("FD {:.2}", self.fd),
        }
    }
}

fn fp32() -> String {
    "fp32".into()
}

/// The evaluated cells of the checkpoint in `dir` (none when it has no [`QUALITY_FILE`]).
pub fn read(dir: &Path) -> anyhow::Result<Vec<Quality>> {
    let path = dir.join(QUALITY_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).with_context(|| format!("{} line {}", path.display(), i + 1))
        })
        .collect()
}

/// The cell of `length` with Euler `steps`, if evaluated.
pub fn find(cells: &[Quality], length: u32, steps: u32) -> Option<&Quality> {
    let solver = format!("euler:{steps}");
    cells.iter().find(|q| q.length == length && q.solver == solver)
}
