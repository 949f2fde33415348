//! Authentication helpers shared by every surface: constant-time comparison (`subtle`) and the
//! bearer-token check (RFC 6750 `Authorization: Bearer <token>`). Nothing here logs a token.

use super::error::ApiError;
use crate::settings::Secret;
use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

/// Whether `a` and `b` are equal, in time that depends only on their lengths (`subtle`).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Checks `Authorization: Bearer <token>` against `expected`, in constant time.
///
/// Errors: [`ApiError::Unauthorized`] when the header is missing, not a bearer token, or wrong;
/// [`ApiError::Unavailable`] when no token is configured (`expected` is `None` or empty), so an
/// unconfigured surface never accepts an empty token.
pub fn require_bearer(headers: &HeaderMap, expected: Option<&Secret>) -> Result<(), ApiError> {
    let expected = expected
        .map(Secret::expose)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::Unavailable("no API token is configured for this route".into()))?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized)?;
    if constant_time_eq(given.trim().as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_auth(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn bearer_token_is_checked() {
        let token = Secret::new("s3cret");
        assert!(require_bearer(&with_auth("Bearer s3cret"), Some(&token)).is_ok());
        for bad in ["Bearer s3creT", "Bearer s3cret2", "Basic s3cret", "s3cret", "Bearer "] {
            assert!(
                matches!(
                    require_bearer(&with_auth(bad), Some(&token)),
                    Err(ApiError::Unauthorized)
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            require_bearer(&HeaderMap::new(), Some(&token)),
            Err(ApiError::Unauthorized)
        ));
    }

    #[test]
    fn an_unconfigured_token_accepts_nothing() {
        let empty = Secret::new("");
        assert!(matches!(
            require_bearer(&with_auth("Bearer "), Some(&empty)),
            Err(ApiError::Unavailable(_))
        ));
        assert!(matches!(
            require_bearer(&with_auth("Bearer x"), None),
            Err(ApiError::Unavailable(_))
        ));
    }

    #[test]
    fn constant_time_eq_compares_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
