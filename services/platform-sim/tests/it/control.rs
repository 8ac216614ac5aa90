//! The `/_sim` control API: revoke, expire, rate limit, outage, inspection.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::*;

#[tokio::test]
async fn revoked_account_fails_then_reauthorizes() {
    let sim = start(1.0).await;
    let t = sim.connect("alice", SCOPES).await;
    let me: Value = sim.me(&t.access).await.json().await.expect("json");

    let resp = sim.control("/_sim/x/accounts/alice/revoke", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.expect("json"), json!({"revoked_tokens": 2}));

    assert_unauthorized(sim.tweet(&t.access, r#"{"text":"hi"}"#).await).await;
    assert_invalid_token_value(sim.refresh(&t.refresh.expect("rt")).await).await;
    // Not reuse: the counter stays at 0.
    assert_eq!(sim.get_json("/_sim/stats").await["x"]["refresh_token_reuse"], 0);

    let again = sim.connect("alice", SCOPES).await;
    let me2: Value = sim.me(&again.access).await.json().await.expect("json");
    assert_eq!(me["data"]["id"], me2["data"]["id"], "same platform user");
    assert_eq!(sim.tweet(&again.access, r#"{"text":"hi"}"#).await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn expired_account_can_refresh() {
    let sim = start(1.0).await;
    let t = sim.connect("alice", SCOPES).await;
    let resp = sim.control("/_sim/x/accounts/alice/expire", None).await;
    assert_eq!(resp.json::<Value>().await.expect("json"), json!({"expired_tokens": 1}));
    assert_unauthorized(sim.me(&t.access).await).await;
    let fresh = tokens_of(sim.refresh(&t.refresh.expect("rt")).await).await;
    assert_eq!(sim.me(&fresh.access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn rate_limit_hits_api_not_oauth() {
    let sim = start(1.0).await;
    let t = sim.connect("alice", SCOPES).await;
    let resp = sim.control("/_sim/x/rate-limit", Some(json!({"for_seconds": 0.5}))).await;
    assert_eq!(resp.status(), StatusCode::OK);

    let resp = sim.tweet(&t.access, r#"{"text":"hi"}"#).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let h = resp.headers();
    assert_eq!(h.get("x-rate-limit-remaining").and_then(|v| v.to_str().ok()), Some("0"));
    assert!(h.get("x-rate-limit-limit").is_some());
    let reset: u64 = h
        .get("x-rate-limit-reset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("reset epoch");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(reset >= now && reset <= now + 2, "reset {reset} now {now}");
    assert_eq!(
        resp.json::<Value>().await.expect("json"),
        json!({"title":"Too Many Requests","detail":"Too Many Requests","type":"about:blank","status":429})
    );
    // The token endpoint is unaffected.
    tokens_of(sim.refresh(&t.refresh.expect("rt")).await).await;

    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(sim.tweet(&t.access, r#"{"text":"hi"}"#).await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn outage_hits_everything_then_ends() {
    let sim = start(1.0).await;
    let t = sim.connect("alice", SCOPES).await;
    let resp = sim.control("/_sim/x/outage", Some(json!({"for_seconds": 30, "status": 502}))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(sim.me(&t.access).await.status(), StatusCode::BAD_GATEWAY);
    let resp = sim.refresh(&t.refresh.clone().expect("rt")).await;
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(resp.json::<Value>().await.expect("json")["status"], 502);

    let resp = sim.control("/_sim/x/clear-faults", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    // The refresh during the outage did not spend the token.
    tokens_of(sim.refresh(&t.refresh.expect("rt")).await).await;

    let resp = sim.control("/_sim/x/outage", Some(json!({"for_seconds": 0.3}))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(sim.me(&t.access).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(sim.me(&t.access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn control_errors() {
    let sim = start(1.0).await;
    sim.connect("alice", SCOPES).await;
    for path in [
        "/_sim/mastodon/accounts/alice/revoke",
        "/_sim/x/accounts/nobody/revoke",
        "/_sim/x/accounts/nobody/expire",
    ] {
        let resp = sim.control(path, None).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(resp.json::<Value>().await.expect("json")["error"].is_string());
    }
    let resp = sim.control("/_sim/mastodon/outage", Some(json!({"for_seconds": 1}))).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = sim.http.get(sim.url("/_sim/posts?platform=mastodon")).send().await.expect("get");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    for body in [json!({}), json!({"for_seconds": -1}), json!({"for_seconds": 1, "status": 200})] {
        let resp = sim.control("/_sim/x/outage", Some(body.clone())).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    let resp =
        sim.http.post(sim.url("/_sim/x/rate-limit")).body("garbage").send().await.expect("post");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn tokens_lists_everything_issued() {
    let sim = start(1.0).await;
    let p = pkce();
    let code = sim.code_for("alice", SCOPES, &p).await;
    let t = tokens_of(sim.exchange(&code, &p.verifier).await).await;
    let rt = t.refresh.clone().expect("rt");
    let r = tokens_of(sim.refresh(&rt).await).await;
    let listed: Vec<String> =
        serde_json::from_value(sim.get_json("/_sim/tokens").await["tokens"].clone())
            .expect("strings");
    for secret in [code, t.access, rt, r.access, r.refresh.expect("rt2")] {
        assert!(listed.contains(&secret));
    }
    assert_eq!(listed.len(), 5);
}
