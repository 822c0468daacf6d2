//! The HTTP API's request body (`POST /v1/samples`), its translation into an
//! `odelt_runtime::SampleRequest` with the same meaning as `odelt sample`'s flags, and the
//! answer in each format.

use std::time::Duration;

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use odelt_runtime::{Dopri5Options, Labels, NoiseSource, Runtime, SampleRequest, Samples, SolverChoice};
use serde::Deserialize;

use super::error::ApiError;
use super::state::Limits;

/// The time integrator, as in `odelt sample --solver`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SolverName {
    #[default]
    Euler,
    Dopri5,
}

/// What the answer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `application/x-npy`: float32 [n, C, H, W], the bytes `odelt sample --npy` writes.
    #[default]
    Npy,
    /// `image/png`: the grid `odelt sample --out` writes.
    Png,
    /// `application/json`: shape, length, NFE, timings and the data.
    Json,
}

/// The body of `POST /v1/samples`. Fields mean what `odelt sample`'s flags of the same names
/// mean (docs/DESIGN.md §8, §13); unknown fields are refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleBody {
    /// Number of samples, 1 ..= the server's `--max-n`.
    pub n: usize,
    /// Active blocks l; exactly one of `length` and `budget_ms` (dopri5 may leave both out:
    /// the largest length).
    pub length: Option<u32>,
    /// Latency budget for the whole solve: picks length (and steps when not given) from the
    /// manifest's calibration (euler only).
    pub budget_ms: Option<f64>,
    #[serde(default)]
    pub solver: SolverName,
    /// Euler steps T.
    pub steps: Option<u32>,
    /// Dopri5 tolerances (default 1e-5 each).
    pub rtol: Option<f64>,
    pub atol: Option<f64>,
    /// Dopri5's shortcut level (0 … log2 T_max; default: the flow level).
    pub level: Option<u32>,
    /// Noise seed (odelt noise v1, as `--seed`); default 0.
    #[serde(default)]
    pub seed: u64,
    /// One class for every sample; or `labels`, one per sample; or neither: the null label.
    pub class: Option<i64>,
    pub labels: Option<Vec<i64>>,
    /// Classifier-free guidance scale w (≤ 1: none); default 1.
    pub cfg: Option<f32>,
    #[serde(default)]
    pub format: Format,
}

/// A body turned into a runtime request, with the length (and, for a budget, steps) chosen.
#[derive(Debug, Clone)]
pub struct Plan {
    pub request: SampleRequest,
    pub length: u32,
    pub format: Format,
}

fn bad<T>(message: impl Into<String>) -> Result<T, ApiError> {
    Err(ApiError::BadRequest(message.into()))
}

impl SampleBody {
    /// Parses a JSON body, naming the field and position of the first problem.
    pub fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
        serde_json::from_slice(bytes).map_err(|e| ApiError::BadRequest(format!("invalid request body: {e}")))
    }

    /// Checks the body against the server's limits and the export, and builds the request.
    pub fn plan(&self, runtime: &Runtime, limits: &Limits) -> Result<Plan, ApiError> {
        if self.n == 0 || self.n > limits.max_n {
            return bad(format!("n must be in 1..={} (got {})", limits.max_n, self.n));
        }
        if self.class.is_some() && self.labels.is_some() {
            return bad("give `class` or `labels`, not both");
        }
        let labels = match (&self.class, &self.labels) {
            (Some(class), None) => Labels::Class(*class),
            (None, Some(labels)) => Labels::PerSample(labels.clone()),
            _ => Labels::Null,
        };
        let mut request = SampleRequest::new(self.n, SolverChoice::Euler { steps: 1 })
            .with_labels(labels)
            .with_cfg(self.cfg.unwrap_or(1.0), Default::default());
        request.noise = NoiseSource::Seed(self.seed);
        match self.solver {
            SolverName::Euler => {
                if self.rtol.is_some() || self.atol.is_some() || self.level.is_some() {
                    return bad(
                        "`rtol`/`atol`/`level` apply to solver dopri5, not euler (its level follows `steps`)",
                    );
                }
                if let Some(steps) = self.steps.filter(|s| *s > limits.max_steps) {
                    return bad(format!(
                        "steps must be at most {} (got {steps})",
                        limits.max_steps
                    ));
                }
                let (length, steps) = match (self.length, self.budget_ms) {
                    (Some(_), Some(_)) => return bad("give `length` or `budget_ms`, not both"),
                    (None, None) => return bad("give `length` or `budget_ms`"),
                    (Some(length), None) => match self.steps {
                        Some(steps) => (length, steps),
                        None => return bad("solver euler needs `steps` (or `budget_ms` to choose them)"),
                    },
                    (None, Some(budget)) => {
                        let rows = runtime.rows_per_evaluation(&request);
                        let pick = runtime.pick_for_budget(budget, self.steps, rows)?;
                        (pick.length, pick.steps)
                    }
                };
                request.length = Some(length);
                request.solver = SolverChoice::Euler { steps };
            }
            SolverName::Dopri5 => {
                if self.steps.is_some() {
                    return bad(
                        "`steps` applies to solver euler; dopri5 chooses its steps from `rtol`/`atol`",
                    );
                }
                if self.budget_ms.is_some() {
                    return bad("`budget_ms` needs solver euler: dopri5's number of evaluations is not known in advance");
                }
                request.length = self.length;
                request.solver = SolverChoice::Dopri5(Dopri5Options {
                    rtol: self.rtol.unwrap_or(1e-5),
                    atol: self.atol.unwrap_or(1e-5),
                    level: self.level,
                    ..Default::default()
                });
            }
        }
        let length = runtime.resolve_length(request.length)?;
        if self.format == Format::Png && !matches!(runtime.image_shape()[0], 1 | 3) {
            return bad(format!(
                "format png needs 1 or 3 channels, the model's samples have {}",
                runtime.image_shape()[0]
            ));
        }
        Ok(Plan {
            request,
            length,
            format: self.format,
        })
    }
}

/// The answer to a finished request: the body in `format` and the `x-odelt-*` headers.
pub(crate) fn answer(samples: &Samples, format: Format, server: Duration) -> Result<Response, ApiError> {
    let server_ms = server.as_secs_f64() * 1e3;
    let encode = |e: anyhow::Error| ApiError::Internal(format!("encoding the samples: {e:#}"));
    let mut response = match format {
        Format::Npy => (
            [(header::CONTENT_TYPE, "application/x-npy")],
            crate::data::npy::samples(&samples.data, samples.shape).map_err(encode)?,
        )
            .into_response(),
        Format::Png => (
            [(header::CONTENT_TYPE, "image/png")],
            crate::png::grid(&samples.data, samples.shape).map_err(encode)?,
        )
            .into_response(),
        Format::Json => axum::Json(serde_json::json!({
            "shape": samples.shape,
            "length": samples.length,
            "level": samples.level,
            "solver": samples.solver,
            "nfe": samples.stats.nfe,
            "accepted_steps": samples.stats.accepted_steps,
            "rejected_steps": samples.stats.rejected_steps,
            "server_ms": server_ms,
            "engine_ms": samples.stats.engine.as_secs_f64() * 1e3,
            "data": samples.data,
        }))
        .into_response(),
    };
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-odelt-length", samples.length.to_string()),
        ("x-odelt-nfe", samples.stats.nfe.to_string()),
        ("x-odelt-server-ms", format!("{server_ms:.3}")),
        ("x-odelt-solver", samples.solver.to_string()),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    Ok(response)
}
