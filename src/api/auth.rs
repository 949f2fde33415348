//! Authentication helpers shared by every surface: constant-time comparison (`subtle`) and the
//! bearer-token check (RFC 6750 `Authorization: Bearer <token>`). Nothing here logs a token.

use super::error::ApiError;
use crate::settings::{ApiToken, Secret, TokenScope};
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

/// Checks `Authorization: Bearer <token>` against every operator token (each compared in
/// constant time, all of them every time) and returns the matching token's name.
///
/// Errors: [`ApiError::Unauthorized`] when the header is missing, not a bearer token, or matches
/// no token (logged without the token); [`ApiError::Forbidden`] when it matches a token whose
/// scope is below `need` (a `read` token asking to pause).
pub fn authorize<'t>(headers: &HeaderMap, tokens: &'t [ApiToken], need: TokenScope) -> Result<&'t str, ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(given) = given else {
        tracing::warn!(error = "missing or malformed bearer token", "API request refused: 401.");
        return Err(ApiError::Unauthorized);
    };
    let mut found: Option<&ApiToken> = None;
    for t in tokens {
        if constant_time_eq(given.as_bytes(), t.token.expose().as_bytes()) && found.is_none() {
            found = Some(t);
        }
    }
    match found {
        None => {
            tracing::warn!(error = "unknown bearer token", "API request refused: 401.");
            Err(ApiError::Unauthorized)
        }
        Some(t) if t.scope < need => {
            tracing::warn!(token = %t.name, error = "token scope too narrow", "API request refused: 403.");
            Err(ApiError::Forbidden(
                "this token is read-only; a control token is needed",
            ))
        }
        Some(t) => Ok(&t.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn operator_tokens_are_matched_by_value_and_held_to_their_scope() {
        let tokens = vec![
            ApiToken {
                name: "grafana".into(),
                token: Secret::new("r-token"),
                scope: TokenScope::Read,
            },
            ApiToken {
                name: "ops".into(),
                token: Secret::new("c-token"),
                scope: TokenScope::Control,
            },
        ];
        let h = with_auth("Bearer r-token");
        assert_eq!(authorize(&h, &tokens, TokenScope::Read).unwrap(), "grafana");
        assert!(matches!(
            authorize(&h, &tokens, TokenScope::Control),
            Err(ApiError::Forbidden(_))
        ));
        let h = with_auth("Bearer c-token");
        assert_eq!(authorize(&h, &tokens, TokenScope::Read).unwrap(), "ops");
        assert_eq!(authorize(&h, &tokens, TokenScope::Control).unwrap(), "ops");
        for bad in ["Bearer x", "Bearer ", "Basic c-token", "c-token"] {
            assert!(matches!(
                authorize(&with_auth(bad), &tokens, TokenScope::Read),
                Err(ApiError::Unauthorized)
            ));
        }
        assert!(matches!(
            authorize(&HeaderMap::new(), &[], TokenScope::Read),
            Err(ApiError::Unauthorized)
        ));
    }

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
