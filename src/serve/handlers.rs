//! Routes and their handlers: each parses, calls the state, answers.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

use super::api::{self, SampleBody};
use super::error::ApiError;
use super::state::AppState;

pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/v1/samples", post(samples))
        .route("/v1/models", get(models))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), record))
        .layer(DefaultBodyLimit::max(state.limits.body_limit))
        // Failures are logged once, by ApiError, at the level they deserve (a full queue is
        // not an error of the server).
        .layer(TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(Level::DEBUG)))
        .with_state(state)
}

/// Counts every answer by route and status, and times it.
async fn record(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let start = Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .requests
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .inc();
    state
        .metrics
        .request_seconds
        .with_label_values(&[route.as_str()])
        .observe(start.elapsed().as_secs_f64());
    response
}

/// A request body read within the client timeout: a client that trickles its body would
/// otherwise hold a task and a connection for as long as it likes.
struct TimedBody(Bytes);

impl FromRequest<Arc<AppState>> for TimedBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let timeout = state.limits.client_timeout;
        match tokio::time::timeout(timeout, Bytes::from_request(request, state)).await {
            Ok(body) => Ok(Self(body?)),
            Err(_) => Err(ApiError::Rejected(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} ms",
                    timeout.as_millis()
                ),
            )),
        }
    }
}

/// `POST /v1/samples`.
async fn samples(
    State(state): State<Arc<AppState>>,
    TimedBody(body): TimedBody,
) -> Result<Response, ApiError> {
    let start = Instant::now();
    let body = SampleBody::parse(&body)?;
    let plan = body.plan(&state.runtime, &state.limits)?;
    let admission = state.admit()?;
    let samples = state.sample(plan.request, plan.length, admission).await?;
    let elapsed = start.elapsed();
    tracing::info!(
        "{} samples, length {}, {}: {} evaluations in {:.1} ms",
        samples.shape[0],
        samples.length,
        samples.solver,
        samples.stats.nfe,
        elapsed.as_secs_f64() * 1e3
    );
    api::answer(&samples, plan.format, elapsed)
}

/// `GET /v1/models`: what the server can sample.
async fn models(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let runtime = &state.runtime;
    let manifest = runtime.manifest();
    let backend = runtime.options().provider.backend();
    let lengths: Vec<serde_json::Value> = runtime
        .lengths()
        .into_iter()
        .filter_map(|length| manifest.entry(length).ok())
        .map(|entry| {
            let calibration: Vec<_> = runtime.own_calibration(entry).collect();
            serde_json::json!({
                "length": entry.length,
                "parameters": entry.parameters,
                "calibration": calibration,
            })
        })
        .collect();
    Json(serde_json::json!({
        "lengths": lengths,
        "image_shape": runtime.image_shape(),
        "num_classes": manifest.model.num_classes,
        "null_label": manifest.model.num_classes,
        "denoise_timesteps": manifest.model.denoise_timesteps,
        "backend": backend,
        "remote": runtime.options().remote.as_ref().map(|r| r.endpoint.as_str()),
        "precision": runtime.options().precision_name(manifest),
        "limits": {
            "max_n": state.limits.max_n,
            "max_steps": state.limits.max_steps,
            "max_batch": state.limits.max_batch,
            "max_queue": state.limits.max_queue,
            "deadline_ms": state.limits.deadline.as_millis() as u64,
        },
    }))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Ready while not shutting down (engines are open before the socket listens).
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.is_draining() {
        ApiError::Draining.into_response()
    } else {
        Json(serde_json::json!({ "status": "ready" })).into_response()
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let text = state
        .metrics
        .render()
        .map_err(|e| ApiError::Internal(format!("encoding metrics: {e}")))?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        text,
    )
        .into_response())
}

/// The web page, built into the binary.
async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}

async fn not_found(request: Request) -> ApiError {
    ApiError::NotFound(format!("no route {} {}", request.method(), request.uri().path()))
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
