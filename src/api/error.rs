//! The one error type of every HTTP surface: each variant is a status code and a stable
//! snake_case `error` code, answered as `{"error": "<code>", "message": "<text>"}`
//! (`application/json`). Messages describe the request, never a secret.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A request the listener refuses, or a failure while serving it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request cannot be read (bad encoding, missing query field).
    #[error("{0}")]
    BadRequest(String),
    /// 401: the route needs a bearer token and it is missing or wrong.
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// 403: a signed request whose signature does not match (`X-Twilio-Signature`, …).
    #[error("{0}")]
    Forbidden(&'static str),
    /// 404: no such route, or nothing known by that id.
    #[error("{0}")]
    NotFound(String),
    /// 409: the request is valid but the thing it names is past accepting it (an ended call).
    #[error("{0}")]
    Conflict(String),
    /// 405: the route exists but not for this method.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// 408: the request took longer than `[api] request_timeout`.
    #[error("the request took too long")]
    Timeout,
    /// 413: the body is larger than `[api] max_body_bytes`.
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// 415: the body is not of the media type the route takes.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: the body is well formed but a field is missing or has a wrong value.
    #[error("{0}")]
    Unprocessable(String),
    /// 503: the surface is not configured (no Twilio auth token, …) or not ready.
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    /// A database failure while serving an operator request: logged with its `error`, answered
    /// 503 without the database's own text.
    pub fn store(e: crate::store::StoreError) -> ApiError {
        tracing::error!(error = %e, "API request failed on the database.");
        ApiError::Unavailable("the database did not answer".into())
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The stable machine-readable code of this error (the JSON `error` field).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::Timeout => "timeout",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Unprocessable(_) => "unprocessable",
            ApiError::Unavailable(_) => "unavailable",
        }
    }

    /// The error a bare status from a lower layer (body limit, timeout, method router) stands
    /// for; `None` for statuses that are not errors.
    pub fn from_status(status: StatusCode) -> Option<ApiError> {
        Some(match status {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            StatusCode::REQUEST_TIMEOUT => ApiError::Timeout,
            StatusCode::NOT_FOUND => ApiError::NotFound("no such route".into()),
            StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType("unsupported media type".into()),
            StatusCode::UNPROCESSABLE_ENTITY => ApiError::Unprocessable("the request is not valid".into()),
            StatusCode::UNAUTHORIZED => ApiError::Unauthorized,
            s if s.is_client_error() => ApiError::BadRequest(format!("bad request ({})", s.as_u16())),
            StatusCode::SERVICE_UNAVAILABLE => ApiError::Unavailable("service unavailable".into()),
            _ => return None,
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code(), "message": self.to_string() });
        (self.status(), Json(body)).into_response()
    }
}
