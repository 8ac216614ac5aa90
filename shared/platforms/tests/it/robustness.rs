//! Every classifier against garbage: random bytes, empty and truncated bodies, documented bodies
//! with every value of the wrong type, huge numbers, deep nesting and random JSON, under statuses
//! from 200 to 599 and garbage rate-limit headers. None may panic; none may say "auth" (an
//! outage must never ask a user to reconnect); unrecognisable bodies get Transient or Ambiguous,
//! or RateLimited / Rejected only where the status alone says so.

use std::path::Path;

use lifeline_platforms::Failure;
use reqwest::{header::HeaderMap, StatusCode};
use serde_json::{json, Value};

use crate::Classifier;

/// xorshift64*: deterministic, dependency-free, good enough to shake parsers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

const STATUSES: [u16; 19] =
    [200, 201, 204, 301, 302, 400, 401, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503, 504, 599];

/// Every documented body in the fixtures, to mutate.
fn documented_bodies() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out = Vec::new();
    for platform in std::fs::read_dir(root).expect("fixtures dir") {
        for file in std::fs::read_dir(platform.expect("entry").path()).expect("platform dir") {
            let path = file.expect("entry").path();
            if path.extension().is_some_and(|e| e == "json") {
                let v: Value = serde_json::from_slice(&std::fs::read(&path).expect("read"))
                    .expect("fixture json");
                if let Some(body) = v.get("body") {
                    out.push(serde_json::to_vec(body).expect("json"));
                }
                if let Some(text) = v.get("body_text").and_then(Value::as_str) {
                    out.push(text.as_bytes().to_vec());
                }
            }
        }
    }
    out
}

/// The same shape with every leaf of another type: the names are right, the types are not.
fn wrong_types(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), wrong_types(v))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(wrong_types).collect()),
        Value::String(s) => json!(s.len()),
        Value::Number(n) => json!(n.to_string()),
        Value::Bool(b) => json!(b.to_string()),
        Value::Null => json!([]),
    }
}

/// Objects turned into arrays of their values.
fn objects_to_arrays(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Array(m.values().map(objects_to_arrays).collect()),
        Value::Array(a) => Value::Array(a.iter().map(objects_to_arrays).collect()),
        other => other.clone(),
    }
}

/// Random JSON over the key names platforms use, with values that are never a real code.
fn random_json(rng: &mut Rng, depth: u32) -> Value {
    const KEYS: [&str; 12] = [
        "error",
        "code",
        "error_subcode",
        "status",
        "message",
        "errors",
        "reason",
        "serviceErrorCode",
        "data",
        "is_transient",
        "error_description",
        "log_id",
    ];
    const NUMBERS: [&str; 6] =
        ["1e400", "-1e400", "18446744073709551616", "-9223372036854775809", "0.5", "-0.0"];
    match rng.below(if depth > 4 { 4 } else { 7 }) {
        0 => Value::Null,
        1 => json!(rng.coin()),
        2 => serde_json::from_str(rng.pick::<&str>(&NUMBERS)).unwrap_or(Value::Null),
        // Far away from every documented code and status.
        3 => json!(1_000_000_000 + rng.below(1_000_000_000)),
        4 => Value::Array((0..rng.below(4)).map(|_| random_json(rng, depth + 1)).collect()),
        5 => json!(format!("zz{}", rng.next())),
        _ => Value::Object(
            (0..rng.below(4))
                .map(|_| ((*rng.pick(&KEYS)).to_owned(), random_json(rng, depth + 1)))
                .collect(),
        ),
    }
}

fn garbage_headers(rng: &mut Rng) -> HeaderMap {
    let mut h = HeaderMap::new();
    let values = [
        "99999999999999999999999",
        "-5",
        "Wed, 21 Oct 2015 07:28:00 GMT",
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "{\"1\":[{\"estimated_time_to_regain_access\":18446744073709551615}]}",
        "{\"1\":\"x\"}",
        "\u{7f}",
    ];
    for name in ["retry-after", "x-rate-limit-reset", "x-business-use-case-usage"] {
        if rng.coin() {
            if let Ok(v) = rng.pick(&values).parse() {
                h.insert(name, v);
            }
        }
    }
    h
}

/// What a body nobody recognises may become under `status`.
fn allowed_for_garbage(classifier: Classifier, status: u16, f: &Failure) -> bool {
    match f {
        Failure::Transient { .. } | Failure::Ambiguous { .. } => true,
        Failure::RateLimited { .. } => classifier.sees_status() && status == 429,
        Failure::Rejected { .. } => {
            classifier.sees_status() && matches!(status, 400 | 404 | 409 | 413 | 422)
        }
        Failure::Auth { .. } => false,
    }
}

#[test]
fn garbage_never_panics_and_never_means_auth() {
    let documented = documented_bodies();
    assert!(!documented.is_empty());
    let mut checked = 0usize;
    let seeds = [0x5eed_1234_abcd_ef01_u64, 0x0dd_ba11, 0xfeed_face_cafe_beef, 42];
    for (round, seed) in (0..4000).map(|r| (r, seeds[r / 1000])) {
        let mut rng = Rng(seed.wrapping_add(round as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        // (body, strict): strict bodies are unrecognisable by construction; random JSON is only
        // held to "never auth".
        let (body, strict): (Vec<u8>, bool) = match round % 8 {
            0 => ((0..rng.below(64)).map(|_| rng.next() as u8).collect(), true),
            1 => (Vec::new(), true),
            2 => {
                let doc = rng.pick::<Vec<u8>>(&documented);
                (doc[..rng.below(doc.len().max(1))].to_vec(), true)
            }
            3 => {
                let doc: Value =
                    serde_json::from_slice(rng.pick::<Vec<u8>>(&documented)).unwrap_or(Value::Null);
                (serde_json::to_vec(&wrong_types(&doc)).expect("json"), true)
            }
            4 => {
                let doc: Value =
                    serde_json::from_slice(rng.pick::<Vec<u8>>(&documented)).unwrap_or(Value::Null);
                (serde_json::to_vec(&objects_to_arrays(&doc)).expect("json"), true)
            }
            5 => {
                let huge = [
                    r#"{"error":{"code":1e400,"error_subcode":1e400}}"#,
                    r#"{"error":{"code":18446744073709551616}}"#,
                    r#"{"serviceErrorCode":-9223372036854775809,"status":1e999}"#,
                    r#"{"error":{"code":"190","error_subcode":"460"}}"#,
                    r#"{"error":190}"#,
                    r#"{"error":{"code":{"code":190}}}"#,
                    r#"{"error":null,"code":null}"#,
                    r#"{"status":"401","title":401}"#,
                ];
                (rng.pick(&huge).as_bytes().to_vec(), true)
            }
            6 => {
                let depth = 50 + rng.below(400);
                let nested = format!("{}{}", "[{\"error\":".repeat(depth), "}]".repeat(depth / 2));
                (nested.into_bytes(), true)
            }
            _ => (serde_json::to_vec(&random_json(&mut rng, 0)).expect("json"), false),
        };
        let status = if rng.coin() {
            *rng.pick(&STATUSES)
        } else {
            200 + u16::try_from(rng.below(400)).unwrap_or(0)
        };
        let status = StatusCode::from_u16(status).expect("status");
        let headers = garbage_headers(&mut rng);
        for classifier in Classifier::ALL {
            let (expired, mutating) = (rng.coin(), rng.coin());
            let f = classifier.classify(status, &headers, &body, expired, mutating);
            let ok = if strict {
                allowed_for_garbage(classifier, status.as_u16(), &f)
            } else {
                !matches!(f, Failure::Auth { .. })
            };
            assert!(
                ok,
                "{classifier:?} {status} body {:?} → {f:?}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            );
            if let Failure::RateLimited { retry_after: Some(d), .. } = f {
                assert!(d.as_secs() <= 7 * 24 * 3600, "{classifier:?}: unbounded wait {d:?}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 4000 * Classifier::ALL.len());
}

#[test]
fn outage_statuses_never_mean_auth_even_with_auth_bodies() {
    // A documented auth body behind a 5xx (a proxy replaying, a half-broken backend) is still an
    // outage.
    for body in documented_bodies() {
        for status in [500u16, 502, 503, 504] {
            let status = StatusCode::from_u16(status).expect("status");
            for classifier in Classifier::ALL.into_iter().filter(|c| c.sees_status()) {
                let f = classifier.classify(status, &HeaderMap::new(), &body, false, true);
                assert!(!matches!(f, Failure::Auth { .. }), "{classifier:?} {status}: {f:?}");
            }
        }
    }
}
