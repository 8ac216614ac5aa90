//! Runs every `tests/fixtures/<platform>/*.json`: a documented answer and the outcome Lifeline
//! must classify it as (`auth:<cause>`, `rate_limited[:<seconds>]`, `transient`, `rejected`,
//! `ambiguous`). Each file names the documentation page it was transcribed from.

use std::{collections::BTreeMap, path::Path};

use lifeline_platforms::Failure;
use reqwest::{
    header::{HeaderMap, HeaderName, HeaderValue},
    StatusCode,
};
use serde::Deserialize;

use crate::Classifier;

#[derive(Deserialize)]
struct Fixture {
    source: String,
    call: String,
    status: u16,
    #[serde(default)]
    mutating: bool,
    #[serde(default)]
    believed_expired: bool,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<serde_json::Value>,
    #[serde(default)]
    body_text: Option<String>,
    expect: String,
}

fn outcome(f: &Failure) -> String {
    match f {
        Failure::Auth { cause, .. } => format!("auth:{}", cause.as_str()),
        Failure::RateLimited { .. } => "rate_limited".into(),
        Failure::Transient { .. } => "transient".into(),
        Failure::Rejected { .. } => "rejected".into(),
        Failure::Ambiguous { .. } => "ambiguous".into(),
    }
}

fn matches(expect: &str, f: &Failure) -> bool {
    match (expect.split_once(':'), f) {
        (Some(("rate_limited", secs)), Failure::RateLimited { retry_after, .. }) => {
            retry_after.map(|d| d.as_secs().to_string()).as_deref() == Some(secs)
        }
        _ => outcome(f) == expect,
    }
}

fn run_platform(platform: &str) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(platform);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    entries.sort();
    let mut failures = Vec::new();
    for path in &entries {
        let text = std::fs::read_to_string(path).expect("fixture readable");
        let fx: Fixture = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not a fixture: {e}", path.display()));
        assert!(!fx.source.trim().is_empty(), "{}: cite the source", path.display());
        let body = match (&fx.body, &fx.body_text) {
            (Some(v), _) => serde_json::to_vec(v).expect("json"),
            (None, Some(t)) => t.clone().into_bytes(),
            (None, None) => Vec::new(),
        };
        let mut headers = HeaderMap::new();
        for (k, v) in &fx.headers {
            headers.insert(
                HeaderName::from_bytes(k.as_bytes()).expect("header name"),
                HeaderValue::from_str(v).expect("header value"),
            );
        }
        let status = StatusCode::from_u16(fx.status).expect("status");
        let got = Classifier::for_fixture(platform, &fx.call).classify(
            status,
            &headers,
            &body,
            fx.believed_expired,
            fx.mutating,
        );
        if !matches(&fx.expect, &got) {
            failures.push(format!("{}: expected {}, got {got:?}", path.display(), fx.expect));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    entries.len()
}

#[test]
fn linkedin_fixtures() {
    assert!(run_platform("linkedin") >= 6);
}

#[test]
fn youtube_fixtures() {
    assert!(run_platform("youtube") >= 6);
}

#[test]
fn tiktok_fixtures() {
    assert!(run_platform("tiktok") >= 6);
}

#[test]
fn instagram_fixtures() {
    assert!(run_platform("instagram") >= 6);
}

#[test]
fn facebook_fixtures() {
    assert!(run_platform("facebook") >= 6);
}

#[test]
fn threads_fixtures() {
    assert!(run_platform("threads") >= 6);
}
