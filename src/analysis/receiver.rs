//! `dialerd receive`: a small webhook receiver for operators, to watch what a campaign sends
//! without a real endpoint. It accepts `POST`s on any path, checks `X-Webhook-Signature`
//! (`sha256=<hex HMAC-SHA256(secret, raw body)>`) with the daemon's own signing secret, logs
//! one line per request (event type, `X-Webhook-Id`, whether the signature is valid) and appends
//! each verified body to a JSON Lines file. A request with a bad or missing signature is
//! answered 401, so the sender dead-letters it, and is never written.

use super::webhook;
use crate::settings::Secret;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;
use tracing::{info, warn};

/// Largest request body accepted, in bytes (a long call's `call_analyzed` is well under).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Why the receiver could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    /// No signing secret in settings, so nothing could be verified.
    #[error("no webhook secret configured: set DIALERD__WEBHOOK_SECRET (or webhook_secret in the settings file)")]
    NoSecret,
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The `--out` file could not be opened for appending.
    #[error("cannot open {path} for appending: {source}")]
    Out {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("webhook receiver: {0}")]
    Serve(std::io::Error),
}

/// What the handler shares: the secret, the output file and the ids seen so far.
struct Shared {
    secret: Secret,
    out: Option<tokio::sync::Mutex<tokio::fs::File>>,
    out_path: Option<PathBuf>,
    seen: Mutex<HashSet<String>>,
}

/// A receiver bound to its address, ready to [`Receiver::serve`].
pub struct Receiver {
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
}

impl Receiver {
    /// Binds `listen` and opens `out` for appending (created if missing).
    ///
    /// Errors: [`ReceiverError::NoSecret`] without a secret, [`ReceiverError::Bind`], [`ReceiverError::Out`].
    pub async fn bind(
        listen: SocketAddr,
        secret: Option<Secret>,
        out: Option<&Path>,
    ) -> Result<Receiver, ReceiverError> {
        let secret = secret
            .filter(|s| !s.expose().is_empty())
            .ok_or(ReceiverError::NoSecret)?;
        let file = match out {
            Some(path) => Some(
                tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .await
                    .map_err(|source| ReceiverError::Out {
                        path: path.to_path_buf(),
                        source,
                    })?,
            ),
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| ReceiverError::Bind { addr: listen, source })?;
        let shared = Arc::new(Shared {
            secret,
            out: file.map(tokio::sync::Mutex::new),
            out_path: out.map(Path::to_path_buf),
            seen: Mutex::new(HashSet::new()),
        });
        Ok(Receiver { listener, shared })
    }

    /// The bound address (useful with port 0).
    ///
    /// Errors: the socket has no local address (does not happen once bound).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves.
    ///
    /// Errors: [`ReceiverError::Serve`] when the server fails.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ReceiverError> {
        let addr = self.local_addr().map_err(ReceiverError::Serve)?;
        info!(listen = %addr, out = self.shared.out_path.as_ref().map(|p| p.display().to_string()),
            "Webhook receiver listening; point a campaign's [webhooks] url at http://{addr}/.");
        let app = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(self.shared);
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ReceiverError::Serve)?;
        info!("Webhook receiver stopped.");
        Ok(())
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

async fn handle(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    if method != Method::POST {
        return (StatusCode::METHOD_NOT_ALLOWED, "POST only\n");
    }
    let event = header(&headers, "x-event-type");
    let id = header(&headers, "x-webhook-id");
    let path = uri.path();
    let signature = header(&headers, "x-webhook-signature");
    if !webhook::verify(s.secret.expose().as_bytes(), &body, signature) {
        let reason = if signature.is_empty() { "missing" } else { "invalid" };
        warn!(
            event,
            webhook_id = id,
            path,
            signature = reason,
            bytes = body.len(),
            "Webhook refused (401): the signature does not match this receiver's secret."
        );
        return (StatusCode::UNAUTHORIZED, "invalid signature\n");
    }
    let Some(line) = json_line(&body) else {
        warn!(
            event,
            webhook_id = id,
            path,
            signature = "valid",
            bytes = body.len(),
            "Webhook refused (400): the body is not JSON."
        );
        return (StatusCode::BAD_REQUEST, "body is not JSON\n");
    };
    let duplicate = match s.seen.lock() {
        Ok(mut seen) => !seen.insert(id.to_string()),
        Err(_) => false,
    };
    if let Some(out) = &s.out {
        let mut f = out.lock().await;
        let written = async {
            f.write_all(&line).await?;
            f.flush().await
        }
        .await;
        if let Err(e) = written {
            warn!(event, webhook_id = id, error = %e, "Cannot append the webhook to the output file; answering 503 so it is sent again.");
            return (StatusCode::SERVICE_UNAVAILABLE, "cannot store the event\n");
        }
    }
    info!(
        event,
        webhook_id = id,
        path,
        signature = "valid",
        duplicate,
        bytes = body.len(),
        "Webhook received."
    );
    (StatusCode::OK, "ok\n")
}

/// The body as one line of JSON Lines, or `None` when it is not JSON. A body without line
/// breaks is kept byte for byte; one with line breaks is re-serialised compactly.
fn json_line(body: &[u8]) -> Option<Vec<u8>> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let mut line = if body.contains(&b'\n') || body.contains(&b'\r') {
        serde_json::to_vec(&value).ok()?
    } else {
        body.to_vec()
    };
    line.push(b'\n');
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_keep_bytes_and_fold_line_breaks() {
        assert_eq!(json_line(br#"{"b":1,"a":2}"#).unwrap(), b"{\"b\":1,\"a\":2}\n");
        assert_eq!(json_line(b"{\n\"a\": [1,\n2]}\n").unwrap(), b"{\"a\":[1,2]}\n");
        assert!(json_line(b"not json").is_none());
        assert!(json_line(b"").is_none());
    }
}
