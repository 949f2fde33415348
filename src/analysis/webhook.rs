//! Signed webhook delivery: `X-Webhook-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>`,
//! plus `X-Event-Type`, `X-Webhook-Id` (the idempotency key) and `X-Webhook-Timestamp` (Unix
//! seconds of the attempt). 2xx is success; 5xx, 408, 429, timeouts and connection errors are
//! retryable; any other status is permanent.

use super::SinkError;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

type HmacSha256 = Hmac<Sha256>;

/// The `X-Webhook-Signature` value of `body` under `secret`: `sha256=<lowercase hex>`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// True when `header` is the valid signature of `body` under `secret` (constant-time compare).
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// Classifies an HTTP status: `Ok` for 2xx, retryable for 5xx/408/429, permanent otherwise.
///
/// Errors: [`SinkError`] as above, naming the status.
pub fn classify(status: reqwest::StatusCode) -> Result<(), SinkError> {
    let code = status.as_u16();
    if status.is_success() {
        Ok(())
    } else if status.is_server_error() || code == 408 || code == 429 {
        Err(SinkError::Retryable(format!("HTTP {code}")))
    } else {
        Err(SinkError::Permanent(format!("HTTP {code}")))
    }
}

/// Classifies a transport error: timeouts and connection failures are retryable.
pub fn transport_error(e: &reqwest::Error) -> SinkError {
    if e.is_builder() {
        SinkError::Permanent(format!("bad request: {e}"))
    } else {
        SinkError::Retryable(format!("transport: {e}"))
    }
}

/// Posts the raw JSON `body` to `url`, signed with `secret`; returns the HTTP status.
///
/// Errors: [`SinkError`] by [`classify`] and [`transport_error`].
pub async fn post_signed(
    http: &reqwest::Client,
    url: &str,
    secret: &[u8],
    event: &str,
    id: &str,
    body: &str,
    timeout: Duration,
) -> Result<u16, SinkError> {
    let resp = http
        .post(url)
        .timeout(timeout)
        .header("Content-Type", "application/json")
        .header("X-Webhook-Signature", sign(secret, body.as_bytes()))
        .header("X-Event-Type", event)
        .header("X-Webhook-Id", id)
        .header("X-Webhook-Timestamp", chrono::Utc::now().timestamp().to_string())
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| transport_error(&e))?;
    let status = resp.status();
    classify(status).map(|()| status.as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc4231_case_2_and_verifies() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let s = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            s,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(verify(b"Jefe", b"what do ya want for nothing?", &s));
        assert!(!verify(b"Jefe", b"what do ya want for nothing!", &s));
        assert!(!verify(b"other", b"what do ya want for nothing?", &s));
    }

    #[test]
    fn status_classes() {
        use reqwest::StatusCode as S;
        assert!(classify(S::OK).is_ok());
        for s in [
            S::INTERNAL_SERVER_ERROR,
            S::BAD_GATEWAY,
            S::REQUEST_TIMEOUT,
            S::TOO_MANY_REQUESTS,
        ] {
            assert!(matches!(classify(s), Err(SinkError::Retryable(_))), "{s}");
        }
        for s in [S::BAD_REQUEST, S::UNAUTHORIZED, S::NOT_FOUND, S::GONE] {
            assert!(matches!(classify(s), Err(SinkError::Permanent(_))), "{s}");
        }
    }
}
