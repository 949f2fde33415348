//! HubSpot CRM v3 as HubSpot publishes it: the request bodies of the three operations dialerd
//! uses (contact search, contact create, call create), finding a contact by the forms its phone
//! takes in HubSpot's properties, and HubSpot's rate limits (HTTP 429 and the
//! `X-HubSpot-RateLimit-*` headers: back off for as long as told, for every job of that account).
//!
//! Sources (checked 2026-12): the CRM v3 contacts and calls OpenAPI descriptions HubSpot
//! publishes (`PublicObjectSearchRequest`: `after`, `filterGroups`, `limit`, `properties` and
//! `sorts` required, `sorts` an array of strings; `SimplePublicObjectInputForCreate`:
//! `associations` and `properties` required, property values strings), the CRM search guide
//! <https://developers.hubspot.com/docs/guides/api/crm/search> (at most five filter groups, groups
//! are ORed), the calls guide <https://developers.hubspot.com/docs/guides/api/crm/engagements/calls>
//! (`hs_timestamp` required; call → contact association type 194, `HUBSPOT_DEFINED`) and the API
//! usage guidelines <https://developers.hubspot.com/docs/guides/apps/api-usage/usage-details>
//! (429 with `policyName`, the rate-limit headers). `tests/peers/hubspot-crm-v3.yaml` describes
//! the same contract for the tests.

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use rlibphonenumber::{PhoneNumber, PhoneNumberFormat};
use serde_json::{Value, json};
use std::time::Duration;

/// HubSpot-defined association type id for call → contact (calls guide, associations v4 guide).
pub const CALL_TO_CONTACT: i32 = 194;
/// Results asked of one contact search; the oldest matching contact is kept.
pub const SEARCH_LIMIT: u32 = 10;
/// Longest wait dialerd accepts from a 429 before asking again (a misread header must not park
/// a job for years).
pub const MAX_THROTTLE: Duration = Duration::from_secs(24 * 3600);
/// Wait after a daily-limit 429: HubSpot resets the daily limit at midnight in the account's
/// time zone, which dialerd does not know, so it asks again hourly.
pub const DAILY_RETRY: Duration = Duration::from_secs(3600);

/// Contact properties a search asks for, to check that a result really is the contact.
pub const CONTACT_PROPERTIES: &[&str] = &[
    "email",
    "phone",
    "mobilephone",
    "hs_calculated_phone_number",
    "hs_calculated_mobile_number",
    "hs_searchable_calculated_phone_number",
    "hs_searchable_calculated_mobile_number",
];

/// The forms one number takes in HubSpot's phone properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneForms {
    /// E.164, `+12125550102`: what a validated phone property stores, and
    /// `hs_calculated_phone_number`.
    pub e164: String,
    /// The national significant number's digits, `2125550102`: HubSpot's
    /// `hs_searchable_calculated_phone_number` / `_mobile_number`.
    pub national_digits: String,
    /// Every text form a phone property entered by hand may hold: E.164, national
    /// (`(212) 555-0102`), international (`+1 212-555-0102`), the national digits and the
    /// digits with the country code.
    pub texts: Vec<String>,
    /// The number's region, to read stored phones that lack a country code.
    pub region: Option<crate::campaign::phone::Region>,
}

/// The forms of an E.164 number; `None` when libphonenumber cannot read it.
pub fn phone_forms(e164: &str) -> Option<PhoneForms> {
    let n = PhoneNumber::parse(e164, None).ok()?;
    let e164 = n.format_as(PhoneNumberFormat::E164).into_owned();
    let national_digits = n.get_national_significant_number();
    let mut texts = vec![
        e164.clone(),
        n.format_as(PhoneNumberFormat::National).into_owned(),
        n.format_as(PhoneNumberFormat::International).into_owned(),
        national_digits.clone(),
        e164.trim_start_matches('+').to_string(),
    ];
    texts.dedup();
    Some(PhoneForms {
        e164,
        national_digits,
        texts,
        region: n.get_region_code(),
    })
}

fn eq(property: &str, value: &str) -> Value {
    json!({"filters": [{"propertyName": property, "operator": "EQ", "value": value}]})
}

/// The `POST /crm/v3/objects/contacts/search` body that finds the contact with `phone` (E.164)
/// or `email`: one filter group per way HubSpot may hold the number (the searchable calculated
/// phone and mobile numbers, and the `phone` / `mobilephone` texts), plus one for the email; at
/// most five groups. Every member the published description requires is present: `sorts` is
/// empty (dialerd orders the results itself) and `after` is the first page's cursor.
pub fn search_body(phone: &str, email: Option<&str>) -> Value {
    let mut groups = Vec::new();
    match phone_forms(phone) {
        Some(f) => {
            groups.push(eq("hs_searchable_calculated_phone_number", &f.national_digits));
            groups.push(eq("hs_searchable_calculated_mobile_number", &f.national_digits));
            for p in ["phone", "mobilephone"] {
                groups.push(json!({"filters": [{"propertyName": p, "operator": "IN", "values": f.texts}]}));
            }
        }
        None if !phone.is_empty() => groups.push(eq("phone", phone)),
        None => {}
    }
    if let Some(e) = email.filter(|e| !e.is_empty()) {
        groups.push(eq("email", e));
    }
    json!({
        "filterGroups": groups,
        "properties": CONTACT_PROPERTIES,
        "limit": SEARCH_LIMIT,
        "sorts": [],
        "after": "0",
    })
}

/// True when a stored phone text is the number of `f`, read as libphonenumber reads it for the
/// number's region.
fn same_number(stored: &str, f: &PhoneForms) -> bool {
    let Some(region) = f.region else {
        return stored == f.e164;
    };
    PhoneNumber::parse(stored, Some(region))
        .map(|n| n.format_as(PhoneNumberFormat::E164) == f.e164)
        .unwrap_or(false)
}

/// The id of the contact to log the call on among search `results`: the oldest (lowest id)
/// whose phone, mobile phone or email really is the contact's. A result whose only match is
/// the national digits is kept unless HubSpot's calculated E.164 says it is another country's
/// number. `None`: create the contact.
pub fn pick_contact(results: &[Value], phone: &str, email: Option<&str>) -> Option<String> {
    let forms = phone_forms(phone);
    let prop = |r: &Value, k: &str| {
        r["properties"][k]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let mut best: Option<(u64, String)> = None;
    for r in results {
        let Some(id) = r["id"].as_str() else { continue };
        let by_email = email.is_some_and(|e| prop(r, "email").is_some_and(|x| x.eq_ignore_ascii_case(e)));
        let by_phone = forms.as_ref().is_some_and(|f| {
            let stored = [
                "phone",
                "mobilephone",
                "hs_calculated_phone_number",
                "hs_calculated_mobile_number",
            ];
            if stored.iter().any(|k| prop(r, k).is_some_and(|s| same_number(&s, f))) {
                return true;
            }
            let digits = [
                "hs_searchable_calculated_phone_number",
                "hs_searchable_calculated_mobile_number",
            ]
            .iter()
            .any(|k| prop(r, k).as_deref() == Some(f.national_digits.as_str()));
            let other_country = prop(r, "hs_calculated_phone_number").is_some_and(|c| c != f.e164);
            digits && !other_country
        });
        if by_email || by_phone {
            let rank = id.parse::<u64>().unwrap_or(u64::MAX);
            if best.as_ref().is_none_or(|(b, _)| rank < *b) {
                best = Some((rank, id.to_string()));
            }
        }
    }
    best.map(|(_, id)| id)
}

/// The `POST /crm/v3/objects/contacts` body: the contact's phone (E.164), email and names as
/// string properties, and no association (the member is required; it may be empty).
pub fn contact_body(contact: &Value) -> Value {
    let mut props = serde_json::Map::new();
    for k in ["phone", "email", "firstname", "lastname"] {
        if let Some(v) = contact[k].as_str().filter(|v| !v.is_empty()) {
            props.insert(k.into(), json!(v));
        }
    }
    json!({"properties": props, "associations": []})
}

/// The `POST /crm/v3/objects/calls` body: `properties` (every value a string) associated with
/// contact `contact_id` as call → contact (type 194).
pub fn call_body(properties: serde_json::Map<String, Value>, contact_id: &str) -> Value {
    let props: serde_json::Map<String, Value> = properties
        .into_iter()
        .map(|(k, v)| {
            let s = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            (k, Value::String(s))
        })
        .collect();
    json!({"properties": props, "associations": [{"to": {"id": contact_id},
        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": CALL_TO_CONTACT}]}]})
}

/// The id of the contact a refused create names: HubSpot answers a contact create whose email
/// another contact already has with 409 and `"message": "Contact already exists. Existing ID:
/// 12345"` (contacts guide). `None` for any other reply.
pub fn existing_contact_id(reply: &Value) -> Option<String> {
    let m = reply["message"].as_str()?;
    let rest = &m[m.find("Existing ID:")? + "Existing ID:".len()..];
    let id: String = rest.trim_start().chars().take_while(char::is_ascii_digit).collect();
    (!id.is_empty()).then_some(id)
}

/// `hs_timestamp` from an RFC 3339 instant: UTC with milliseconds (`2026-11-21T20:28:20.678Z`).
pub fn timestamp(v: &Value) -> Option<String> {
    let t: DateTime<Utc> = serde_json::from_value(v.clone()).ok()?;
    Some(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

fn header_u64(h: &HeaderMap, name: &str) -> Option<u64> {
    header(h, name).and_then(|v| v.parse().ok())
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3), from `now`.
pub fn retry_after(h: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let v = header(h, "retry-after")?;
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let at = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// How long HubSpot told a client to wait after a 429 (`body` is HubSpot's error JSON):
/// `Retry-After` when sent; a daily limit ([`DAILY_RETRY`]); the rolling interval
/// (`X-HubSpot-RateLimit-Interval-Milliseconds`) when `X-HubSpot-RateLimit-Remaining` is 0 or
/// the policy is the ten-secondly one; a second for the secondly limit. `None` when it said
/// nothing usable (the caller backs off as for any retryable error). At most [`MAX_THROTTLE`].
pub fn throttle_wait(h: &HeaderMap, body: &Value, now: DateTime<Utc>) -> Option<Duration> {
    let policy = body["policyName"].as_str().unwrap_or_default().to_ascii_uppercase();
    let interval = header_u64(h, "x-hubspot-ratelimit-interval-milliseconds").map(Duration::from_millis);
    let wait = if let Some(d) = retry_after(h, now) {
        Some(d)
    } else if policy == "DAILY" || header_u64(h, "x-hubspot-ratelimit-daily-remaining") == Some(0) {
        Some(DAILY_RETRY)
    } else if header_u64(h, "x-hubspot-ratelimit-remaining") == Some(0) || policy.contains("TEN_SECONDLY") {
        Some(interval.unwrap_or(Duration::from_secs(10)))
    } else if header_u64(h, "x-hubspot-ratelimit-secondly-remaining") == Some(0) || policy.contains("SECONDLY") {
        Some(Duration::from_secs(1))
    } else {
        None
    };
    wait.map(|d| d.min(MAX_THROTTLE))
}

/// After a successful reply: how long to hold this account's next requests because the reply
/// says the rolling window (or the second) has no request left. `None`: carry on.
pub fn pause_after(h: &HeaderMap) -> Option<Duration> {
    if header_u64(h, "x-hubspot-ratelimit-remaining") == Some(0) {
        let ms = header_u64(h, "x-hubspot-ratelimit-interval-milliseconds").unwrap_or(10_000);
        return Some(Duration::from_millis(ms).min(MAX_THROTTLE));
    }
    (header_u64(h, "x-hubspot-ratelimit-secondly-remaining") == Some(0)).then_some(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn forms_of_a_us_number() {
        let f = phone_forms("+12125550102").unwrap();
        assert_eq!(f.e164, "+12125550102");
        assert_eq!(f.national_digits, "2125550102");
        for t in ["(212) 555-0102", "+1 212-555-0102", "2125550102", "12125550102"] {
            assert!(f.texts.iter().any(|x| x == t), "{t} missing from {:?}", f.texts);
        }
    }

    #[test]
    fn search_body_has_every_required_member_and_at_most_five_groups() {
        let b = search_body("+12125550102", Some("ana@example.com"));
        for k in ["filterGroups", "properties", "limit", "sorts", "after"] {
            assert!(b.get(k).is_some(), "{k} missing: {b}");
        }
        assert!(b["sorts"].as_array().unwrap().iter().all(Value::is_string));
        assert!(b["after"].is_string());
        let groups = b["filterGroups"].as_array().unwrap();
        assert_eq!(groups.len(), 5);
        assert!(b.to_string().contains("(212) 555-0102"));
        assert_eq!(
            search_body("+12125550102", None)["filterGroups"]
                .as_array()
                .unwrap()
                .len(),
            4
        );
    }

    #[test]
    fn a_hand_entered_phone_is_the_same_contact() {
        let r = json!([
            {"id": "77", "properties": {"phone": "+44 20 7946 0102", "hs_calculated_phone_number": "+442079460102"}},
            {"id": "12", "properties": {"phone": "(212) 555-0102", "email": null}},
            {"id": "40", "properties": {"mobilephone": "212.555.0102"}},
        ]);
        assert_eq!(
            pick_contact(r.as_array().unwrap(), "+12125550102", None).as_deref(),
            Some("12")
        );
        // Only the national digits match, and HubSpot's calculated E.164 is another country's.
        let other = json!([{"id": "5", "properties": {"hs_searchable_calculated_phone_number": "2125550102",
            "hs_calculated_phone_number": "+442125550102"}}]);
        assert_eq!(pick_contact(other.as_array().unwrap(), "+12125550102", None), None);
        let by_digits = json!([{"id": "6", "properties": {"hs_searchable_calculated_phone_number": "2125550102"}}]);
        assert_eq!(
            pick_contact(by_digits.as_array().unwrap(), "+12125550102", None).as_deref(),
            Some("6")
        );
        let by_email = json!([{"id": "9", "properties": {"email": "Ana@Example.com"}}]);
        assert_eq!(
            pick_contact(by_email.as_array().unwrap(), "+12125550199", Some("ana@example.com")).as_deref(),
            Some("9")
        );
    }

    #[test]
    fn bodies_carry_strings_and_the_required_associations() {
        let c = contact_body(&json!({"phone": "+12125550102", "email": null, "firstname": "Ana"}));
        assert_eq!(c["associations"], json!([]));
        assert_eq!(c["properties"], json!({"phone": "+12125550102", "firstname": "Ana"}));
        let mut p = serde_json::Map::new();
        p.insert("hs_call_duration".into(), json!(2051));
        let call = call_body(p, "501");
        assert_eq!(call["properties"]["hs_call_duration"], "2051");
        assert_eq!(call["associations"][0]["types"][0]["associationTypeId"], 194);
        assert_eq!(call["associations"][0]["to"]["id"], "501");
        assert_eq!(
            timestamp(&json!("2026-11-21T20:28:20.678763990Z")).as_deref(),
            Some("2026-11-21T20:28:20.678Z")
        );
    }

    #[test]
    fn a_conflict_names_the_existing_contact() {
        let r =
            json!({"status": "error", "message": "Contact already exists. Existing ID: 7301", "category": "CONFLICT"});
        assert_eq!(existing_contact_id(&r).as_deref(), Some("7301"));
        assert_eq!(existing_contact_id(&json!({"message": "Conflict"})), None);
        assert_eq!(existing_contact_id(&json!({})), None);
    }

    #[test]
    fn told_waits() {
        let now = Utc::now();
        let none = json!({});
        assert_eq!(
            throttle_wait(&headers(&[("Retry-After", "7")]), &none, now),
            Some(Duration::from_secs(7))
        );
        let date = (now + chrono::TimeDelta::seconds(30)).to_rfc2822();
        let d = throttle_wait(&headers(&[("Retry-After", &date)]), &none, now).unwrap();
        assert!(d >= Duration::from_secs(29) && d <= Duration::from_secs(30), "{d:?}");
        let rolling = headers(&[
            ("X-HubSpot-RateLimit-Remaining", "0"),
            ("X-HubSpot-RateLimit-Interval-Milliseconds", "10000"),
            ("X-HubSpot-RateLimit-Max", "100"),
        ]);
        assert_eq!(throttle_wait(&rolling, &none, now), Some(Duration::from_secs(10)));
        assert_eq!(pause_after(&rolling), Some(Duration::from_secs(10)));
        let daily = json!({"status": "error", "errorType": "RATE_LIMIT", "policyName": "DAILY"});
        assert_eq!(throttle_wait(&HeaderMap::new(), &daily, now), Some(DAILY_RETRY));
        assert_eq!(
            throttle_wait(&headers(&[("X-HubSpot-RateLimit-Secondly-Remaining", "0")]), &none, now),
            Some(Duration::from_secs(1))
        );
        assert_eq!(throttle_wait(&HeaderMap::new(), &none, now), None);
        assert_eq!(pause_after(&headers(&[("X-HubSpot-RateLimit-Remaining", "3")])), None);
        assert_eq!(
            throttle_wait(&headers(&[("Retry-After", "999999999")]), &none, now),
            Some(MAX_THROTTLE)
        );
    }
}
