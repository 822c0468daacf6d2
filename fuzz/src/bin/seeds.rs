//! Writes the seed corpora, `fuzz/seeds/<target>/`, from real files the project makes: a
//! checkpoint and its export (config, safetensors, manifest), `.npy` arrays, a gzipped IDX
//! file, a PNG grid and C ABI requests.
//!
//! `cargo afl build --release && target/release/seeds seeds` (scripts/fuzz.sh runs it).

use std::io::Write;
use std::path::Path;

use odelt_format::ModelConfig;

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let folder = dir.join(target);
    std::fs::create_dir_all(&folder).expect("seed folder");
    std::fs::write(folder.join(name), bytes).expect("seed");
}

/// A `.npy` file: NumPy format 1.0, little-endian, C order.
fn npy(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let dims = if shape.len() == 1 {
        format!("{},", dims[0])
    } else {
        dims.join(", ")
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "seeds".into()));
    let tmp = std::env::temp_dir().join(format!("odelt-seeds-{}", std::process::id()));
    let model = odelt_fuzz::micro_model();
    let ckpt = tmp.join("ckpt");
    odelt_export::testing::write_random_checkpoint(&ckpt, &model, 1).expect("checkpoint");
    let engines = tmp.join("engines");
    odelt_export::export(&ckpt, &engines, &Default::default()).expect("export");
    write(
        &dir,
        "manifest",
        "manifest.json",
        &std::fs::read(engines.join("manifest.json")).expect("manifest"),
    );
    write(
        &dir,
        "model_config",
        "config.json",
        &std::fs::read(ckpt.join("config.json")).expect("config"),
    );
    let fmnist = serde_json::to_vec_pretty(&ModelConfig::fmnist()).expect("json");
    write(&dir, "model_config", "fmnist.json", &fmnist);
    write(
        &dir,
        "checkpoint",
        "model.safetensors",
        &std::fs::read(ckpt.join("model.safetensors")).expect("weights"),
    );

    let images: Vec<u8> = (0..2 * 16)
        .flat_map(|i| (i as f32 / 32.0 - 0.5).to_le_bytes())
        .collect();
    let labels: Vec<u8> = [0i64, 1].iter().flat_map(|l| l.to_le_bytes()).collect();
    let mut both = npy("<f4", &[2, 1, 4, 4], &images);
    write(&dir, "npy", "images.npy", &both);
    both.push(0);
    both.extend(npy("<i8", &[2], &labels));
    write(&dir, "npy", "images_and_labels.npy", &both);

    let mut idx = vec![0, 0, 0x08, 3];
    for d in [2u32, 3, 3] {
        idx.extend(d.to_be_bytes());
    }
    idx.extend(0..18u8);
    write(&dir, "idx", "raw.idx", &idx);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&idx).expect("gzip");
    write(&dir, "idx", "images.idx.gz", &gz.finish().expect("gzip"));

    let pixels: Vec<f32> = (0..3 * 4 * 4).map(|i| (i as f32 / 24.0) - 1.0).collect();
    let mut png = vec![0u8];
    png.extend(odelt::png::grid(&pixels, [3, 1, 4, 4]).expect("png"));
    write(&dir, "image", "grey.png", &png);
    let mut rgb = vec![1u8];
    rgb.extend(odelt::png::grid(&pixels, [1, 3, 4, 4]).expect("png"));
    write(&dir, "image", "rgb.png", &rgb);

    // flags, length, solver, steps, rtol, atol, n, seed, cfg, then labels/noise/out length.
    let request = |flags: u32, length: u32, solver: u32, steps: u32, n: u32, cfg: f32| {
        let mut out = Vec::new();
        out.extend(flags.to_le_bytes());
        out.extend(length.to_le_bytes());
        out.extend(solver.to_le_bytes());
        out.extend(steps.to_le_bytes());
        out.extend(1e-3f32.to_le_bytes());
        out.extend(1e-3f32.to_le_bytes());
        out.extend(n.to_le_bytes());
        out.extend(7u64.to_le_bytes());
        out.extend(cfg.to_le_bytes());
        out.extend(vec![1u8; 4 * n as usize * 17]);
        out.extend(64u32.to_le_bytes());
        out
    };
    write(&dir, "c_abi", "euler.bin", &request(0, 4, 0, 4, 2, 1.0));
    write(&dir, "c_abi", "dopri5_labels.bin", &request(2, 2, 1, 0, 3, 2.0));
    write(&dir, "c_abi", "noise.bin", &request(4, 0, 0, 1, 1, 1.0));
    for (name, body) in [
        (
            "euler.json",
            r#"{"n": 2, "length": 4, "solver": "euler", "steps": 4, "seed": 1, "class": 1, "cfg": 2.0, "format": "png"}"#,
        ),
        (
            "dopri5.json",
            r#"{"n": 1, "solver": "dopri5", "rtol": 0.001, "atol": 0.001, "labels": [2], "format": "json"}"#,
        ),
        (
            "budget.json",
            r#"{"n": 3, "budget_ms": 50, "solver": "euler", "format": "npy"}"#,
        ),
    ] {
        write(&dir, "serve_request", name, body.as_bytes());
    }
    std::fs::remove_dir_all(&tmp).ok();
}
