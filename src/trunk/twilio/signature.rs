//! `X-Twilio-Signature`, computed as Twilio computes it (Twilio "Webhooks security"; the
//! reference is the helper libraries' `RequestValidator`): the full URL of the request, then
//! each POST parameter name followed by its value, names sorted (and a repeated name's distinct
//! values sorted), HMAC-SHA1 keyed with the account's auth token, base64. Twilio may have signed
//! the URL with or without the scheme's default port (`:443`, `:80`), so both forms are tried.
//! Comparison is in constant time.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use std::collections::BTreeMap;

/// The request header Twilio signs with.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// The signature of a request to `url` with form `params`, keyed by `auth_token` (base64 of
/// HMAC-SHA1, 28 characters).
pub fn compute(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for (name, value) in params {
        sorted.entry(name).or_default().insert(value);
    }
    // HMAC takes a key of any length, so this cannot fail.
    let Ok(mut mac) = <Hmac<Sha1> as Mac>::new_from_slice(auth_token.as_bytes()) else {
        return String::new();
    };
    mac.update(url.as_bytes());
    for (name, values) in sorted {
        for value in values {
            mac.update(name.as_bytes());
            mac.update(value.as_bytes());
        }
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `signature` is what Twilio sends for a request to `url` with `params` under
/// `auth_token`, with the URL as given, without its scheme's default port, or with it added.
pub fn verify(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    url_variants(url).iter().fold(false, |ok, u| {
        let expected = compute(auth_token, u, params);
        // Non-short-circuit: every variant is computed and compared whatever the result.
        ok | crate::api::auth::constant_time_eq(expected.as_bytes(), signature.as_bytes())
    })
}

/// `url` as given, plus the same URL with its default port (`:443` for https, `:80` for http)
/// removed when present or added when absent.
pub fn url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_string()];
    let Some((scheme, rest)) = url.split_once("://") else {
        return out;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return out,
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let port = authority
        .rsplit_once(':')
        .filter(|(host, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with('['))
        .filter(|(host, _)| !host.contains('[') || host.ends_with(']'));
    match port {
        Some((host, p)) if p == default_port => out.push(format!("{scheme}://{host}{tail}")),
        Some(_) => {}
        None => out.push(format!("{scheme}://{authority}:{default_port}{tail}")),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(from: &str) -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", from),
            ("Digits", "1234"),
            ("From", from),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    #[test]
    fn twilio_reference_vectors() {
        // Twilio's RequestValidator test vectors (token 12345).
        assert_eq!(
            compute("12345", URL, &params("+14158675310")),
            "GvWf1cFY/Q7PnoempGyD5oXAezc="
        );
        assert_eq!(
            compute("12345", URL, &params("+14158675309")),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
    }

    #[test]
    fn parameter_order_does_not_matter() {
        let mut p = params("+14158675310");
        p.reverse();
        assert_eq!(compute("12345", URL, &p), "GvWf1cFY/Q7PnoempGyD5oXAezc=");
    }

    #[test]
    fn verify_accepts_the_url_with_or_without_the_default_port() {
        let p = params("+14158675310");
        let sig = "GvWf1cFY/Q7PnoempGyD5oXAezc=";
        assert!(verify("12345", URL, &p, sig));
        assert!(verify(
            "12345",
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            &p,
            sig
        ));
        let signed_with_port = compute("12345", "https://mycompany.com:443/myapp.php?foo=1&bar=2", &p);
        assert!(verify("12345", URL, &p, &signed_with_port));
        // A port that is not the default is part of the URL.
        assert!(!verify(
            "12345",
            "https://mycompany.com:8443/myapp.php?foo=1&bar=2",
            &p,
            sig
        ));
    }

    #[test]
    fn verify_refuses_any_change() {
        let p = params("+14158675310");
        let sig = "GvWf1cFY/Q7PnoempGyD5oXAezc=";
        assert!(!verify("12346", URL, &p, sig), "token");
        assert!(
            !verify("12345", "https://mycompany.com/myapp.php?foo=1&bar=3", &p, sig),
            "url"
        );
        assert!(!verify("12345", URL, &params("+14158675309"), sig), "parameter");
        let mut extra = p.clone();
        extra.push(("Extra".into(), "1".into()));
        assert!(!verify("12345", URL, &extra, sig), "added parameter");
        assert!(!verify("12345", URL, &p, ""), "empty signature");
    }

    #[test]
    fn url_variants_toggle_only_the_default_port() {
        assert_eq!(url_variants("http://a.b/x"), ["http://a.b/x", "http://a.b:80/x"]);
        assert_eq!(
            url_variants("http://a.b:80/x?q=1"),
            ["http://a.b:80/x?q=1", "http://a.b/x?q=1"]
        );
        assert_eq!(url_variants("https://a.b?q"), ["https://a.b?q", "https://a.b:443?q"]);
        assert_eq!(url_variants("http://127.0.0.1:8686/x"), ["http://127.0.0.1:8686/x"]);
        assert_eq!(url_variants("http://[::1]/x"), ["http://[::1]/x", "http://[::1]:80/x"]);
        assert_eq!(
            url_variants("http://[::1]:80/x"),
            ["http://[::1]:80/x", "http://[::1]/x"]
        );
        assert_eq!(url_variants("ftp://a.b/x"), ["ftp://a.b/x"]);
    }
}
