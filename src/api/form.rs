//! The form extractor of the surfaces that take `application/x-www-form-urlencoded` bodies
//! (Twilio callbacks). It keeps every name/value pair in order, because a signature covers all
//! of them, and parses typed fields on demand; each failure is an [`ApiError`].

use super::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

/// The form media type.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// A form body: its raw bytes and every (name, value) pair, percent-decoded, in body order.
#[derive(Clone, Debug)]
pub struct FormBody {
    /// Every pair, in the order sent; a name may repeat.
    pub pairs: Vec<(String, String)>,
    raw: Bytes,
}

impl FormBody {
    /// Reads a form from `raw` bytes.
    ///
    /// Errors: [`ApiError::BadRequest`] when the bytes are not a form.
    pub fn from_bytes(raw: Bytes) -> Result<FormBody, ApiError> {
        let pairs = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&raw)
            .map_err(|e| ApiError::BadRequest(format!("malformed form body: {e}")))?;
        Ok(FormBody { pairs, raw })
    }

    /// The typed fields of the form (unknown names ignored).
    ///
    /// Errors: [`ApiError::Unprocessable`] naming the missing or malformed field.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_urlencoded::from_bytes(&self.raw).map_err(|e| ApiError::Unprocessable(format!("form: {e}")))
    }
}

impl<S: Send + Sync> FromRequest<S> for FormBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case(FORM_CONTENT_TYPE) {
            return Err(ApiError::UnsupportedMediaType(format!("expected {FORM_CONTENT_TYPE}")));
        }
        let raw = Bytes::from_request(req, state).await.map_err(|e| {
            ApiError::from_status(e.status())
                .filter(|a| matches!(a, ApiError::PayloadTooLarge))
                .unwrap_or_else(|| ApiError::BadRequest(e.body_text()))
        })?;
        FormBody::from_bytes(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(rename_all = "PascalCase")]
    struct Status {
        call_sid: String,
        sequence_number: u32,
    }

    #[test]
    fn pairs_keep_order_and_repeats_and_typed_fields_parse() {
        let f = FormBody::from_bytes(Bytes::from_static(b"CallSid=CA1&SequenceNumber=2&X=a%2Bb&X=c+d")).unwrap();
        assert_eq!(
            f.pairs,
            vec![
                ("CallSid".into(), "CA1".into()),
                ("SequenceNumber".into(), "2".into()),
                ("X".into(), "a+b".into()),
                ("X".into(), "c d".into())
            ]
        );
        let s: Status = f.parse().unwrap();
        assert_eq!((s.call_sid.as_str(), s.sequence_number), ("CA1", 2));
    }

    #[test]
    fn a_missing_or_malformed_field_is_unprocessable() {
        let f = FormBody::from_bytes(Bytes::from_static(b"CallSid=CA1")).unwrap();
        assert!(matches!(f.parse::<Status>(), Err(ApiError::Unprocessable(m)) if m.contains("SequenceNumber")));
        let f = FormBody::from_bytes(Bytes::from_static(b"CallSid=CA1&SequenceNumber=two")).unwrap();
        assert!(matches!(f.parse::<Status>(), Err(ApiError::Unprocessable(_))));
    }
}
