//! The status page: `GET /` serves one static HTML page (`status_page.html`, no build step)
//! that reads `GET /v1/campaigns` and follows `GET /v1/events` with the operator's read token.
//! The page itself holds no data, so it needs no token; the token is given once (in the URL
//! fragment `#token=…`, which browsers never send, or in its form) and kept in the tab.

use super::ApiState;
use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;

/// The page, embedded in the binary.
pub const STATUS_PAGE: &str = include_str!("status_page.html");

/// The page's route.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new().route("/", get(page))
}

async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
            ),
        ],
        STATUS_PAGE,
    )
}
