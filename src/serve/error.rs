//! The one place where errors become status codes: every error is `{"error": "..."}` JSON.

use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use odelt_runtime::Error as RtError;

/// What a request can fail with.
#[derive(Debug)]
pub enum ApiError {
    /// The request is malformed or asks for something invalid (400).
    BadRequest(String),
    /// A rejection of the HTTP layer with its own status (body too large: 413, …).
    Rejected(StatusCode, String),
    NotFound(String),
    MethodNotAllowed,
    /// The solve failed on the numbers (NaN in the model output, Dopri5's step limit): 422.
    Unprocessable(String),
    /// `--max-queue` requests are already admitted: 503 with Retry-After.
    QueueFull {
        max_queue: usize,
    },
    /// Shutting down: 503.
    Draining,
    /// The per-request deadline passed: 504.
    DeadlineExceeded(Duration),
    Internal(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Rejected(status, _) => *status,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::QueueFull { .. } | ApiError::Draining => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::DeadlineExceeded(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::BadRequest(m)
            | ApiError::Rejected(_, m)
            | ApiError::NotFound(m)
            | ApiError::Unprocessable(m)
            | ApiError::Internal(m) => m.clone(),
            ApiError::MethodNotAllowed => "method not allowed on this route".into(),
            ApiError::QueueFull { max_queue } => {
                format!("server busy: {max_queue} requests are already queued; retry shortly")
            }
            ApiError::Draining => "server is shutting down".into(),
            ApiError::DeadlineExceeded(d) => {
                format!(
                    "request exceeded the server's deadline of {:.1} s",
                    d.as_secs_f64()
                )
            }
        }
    }
}

impl From<RtError> for ApiError {
    fn from(error: RtError) -> Self {
        if error.is_input() {
            ApiError::BadRequest(error.to_string())
        } else if matches!(error, RtError::Numerical(_)) {
            ApiError::Unprocessable(error.to_string())
        } else {
            ApiError::Internal(error.to_string())
        }
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::BytesRejection) -> Self {
        ApiError::Rejected(rejection.status(), rejection.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() && !matches!(self, ApiError::QueueFull { .. } | ApiError::Draining) {
            tracing::error!("{status}: {}", self.message());
        } else {
            tracing::debug!("{status}: {}", self.message());
        }
        let body = Json(serde_json::json!({ "error": self.message() }));
        match self {
            // Admission frees up as soon as one request finishes.
            ApiError::QueueFull { .. } => (status, [(header::RETRY_AFTER, "1")], body).into_response(),
            _ => (status, body).into_response(),
        }
    }
}
