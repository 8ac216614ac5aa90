//! Control API across platforms: hangs, latency, media, tokens, stats, the
//! prefix table.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::*;

#[tokio::test]
async fn hang_then_answer_and_latency() {
    let sim = start(1.0).await;
    let resp = sim
        .control(
            "/_sim/tiktok/outage",
            Some(json!({"for_seconds": 0.3, "hang": true, "status": 503})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let started = Instant::now();
    let resp = sim.get_bearer("/tiktok/open/v2/user/info/?fields=open_id", "x").await;
    assert!(started.elapsed() >= Duration::from_millis(250), "hung");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.json::<Value>().await.expect("json")["error"]["code"], "internal_error");

    sim.control("/_sim/linkedin/latency", Some(json!({"ms": 200, "for_seconds": 30}))).await;
    let started = Instant::now();
    let resp = sim.get_bearer("/linkedin/api/v2/userinfo", "x").await;
    assert!(started.elapsed() >= Duration::from_millis(190));
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    sim.control("/_sim/linkedin/clear-faults", None).await;
    let started = Instant::now();
    sim.get_bearer("/linkedin/api/v2/userinfo", "x").await;
    assert!(started.elapsed() < Duration::from_millis(150));

    let resp = sim.control("/_sim/linkedin/latency", Some(json!({"for_seconds": 1}))).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = sim.control("/_sim/x/accounts/alice/explode", None).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = sim.control("/_sim/x/accounts/alice/remove-scope", Some(json!({}))).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn sample_media() {
    let sim = start(1.0).await;
    for (path, ctype) in
        [("/_sim/media/sample.jpg", "image/jpeg"), ("/_sim/media/sample.mp4", "video/mp4")]
    {
        let resp = sim.get(path).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers().get("content-type").and_then(|v| v.to_str().ok()), Some(ctype));
        let len = resp.bytes().await.expect("bytes").len();
        assert!((100..2000).contains(&len), "{path}: {len}");
    }
}

#[tokio::test]
async fn stats_and_tokens_cover_every_platform() {
    let sim = start(1.0).await;
    let t = sim.connect("alice", SCOPES).await;
    let stats = sim.get_json("/_sim/stats").await;
    for p in ["x", "linkedin", "instagram", "facebook", "youtube", "tiktok", "threads"] {
        for k in ["refresh_token_reuse", "duplicate_posts", "tokens_issued", "refreshes", "posts"] {
            assert!(stats[p][k].is_u64(), "{p}.{k}: {stats}");
        }
    }
    // X's remove-scope answers 403 on the API.
    let resp = sim
        .control("/_sim/x/accounts/alice/remove-scope", Some(json!({"scope": "tweet.write"})))
        .await;
    assert_eq!(resp.json::<Value>().await.expect("json"), json!({"affected_tokens": 2}));
    assert_eq!(sim.tweet(&t.access, r#"{"text":"hi"}"#).await.status(), StatusCode::FORBIDDEN);

    let (id, secret) = app("tiktok");
    let params = sim
        .approve(
            "/tiktok/www/v2/auth/authorize/",
            &[
                ("client_key", &id),
                ("scope", "user.info.basic"),
                ("response_type", "code"),
                ("redirect_uri", REDIRECT_URI),
                ("sim_approve_as", "bob"),
            ],
        )
        .await;
    let code = param(&params, "code").expect("code");
    let (_, tt) = status_json(
        sim.post_form(
            "/tiktok/open/v2/oauth/token/",
            &[
                ("client_key", &id),
                ("client_secret", &secret),
                ("code", &code),
                ("grant_type", "authorization_code"),
                ("redirect_uri", REDIRECT_URI),
            ],
        )
        .await,
    )
    .await;
    let listed: Vec<String> =
        serde_json::from_value(sim.get_json("/_sim/tokens").await["tokens"].clone())
            .expect("strings");
    for s in [
        code.as_str(),
        tt["access_token"].as_str().expect("at"),
        tt["refresh_token"].as_str().expect("rt"),
        &t.access,
    ] {
        assert!(listed.iter().any(|l| l == s), "{s} not listed");
    }
}

#[tokio::test]
async fn consent_pages_render_and_deny_redirects() {
    let sim = start(1.0).await;
    let cases: Vec<(String, Vec<(&str, String)>)> = vec![
        (
            "/linkedin/www/oauth/v2/authorization".into(),
            vec![
                ("response_type", "code".into()),
                ("client_id", app("linkedin").0),
                ("scope", "openid profile".into()),
            ],
        ),
        (
            "/instagram/api/oauth/authorize".into(),
            vec![
                ("response_type", "code".into()),
                ("client_id", app("instagram").0),
                ("scope", "instagram_business_basic".into()),
            ],
        ),
        (
            "/threads/www/oauth/authorize".into(),
            vec![
                ("response_type", "code".into()),
                ("client_id", app("threads").0),
                ("scope", "threads_basic".into()),
            ],
        ),
        (
            "/facebook/www/v21.0/dialog/oauth".into(),
            vec![("client_id", app("facebook").0), ("scope", "pages_show_list".into())],
        ),
        (
            "/google/accounts/o/oauth2/v2/auth".into(),
            vec![
                ("response_type", "code".into()),
                ("client_id", app("youtube").0),
                ("scope", "openid".into()),
            ],
        ),
        (
            "/tiktok/www/v2/auth/authorize/".into(),
            vec![
                ("response_type", "code".into()),
                ("client_key", app("tiktok").0),
                ("scope", "user.info.basic".into()),
            ],
        ),
    ];
    for (path, mut pairs) in cases {
        pairs.push(("redirect_uri", REDIRECT_URI.into()));
        pairs.push(("state", "zz".into()));
        let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let resp = sim
            .http
            .get(format!("{}{path}?{}", sim.base, form(&borrowed)))
            .send()
            .await
            .expect("page");
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let html = resp.text().await.expect("html");
        assert!(html.contains("name=\"username\"") && html.contains("deny"), "{path}");
        let mut fields = borrowed.clone();
        fields.push(("decision", "deny"));
        let resp = sim.post_form(&path, &fields).await;
        assert_eq!(resp.status(), StatusCode::FOUND, "{path}");
        let params = location_params(&resp);
        assert!(param(&params, "error").is_some(), "{path}");
        assert_eq!(param(&params, "state").as_deref(), Some("zz"), "{path}");
        let mut fields = borrowed.clone();
        fields.push(("decision", "approve"));
        fields.push(("username", "page_user"));
        let resp = sim.post_form(&path, &fields).await;
        assert_eq!(resp.status(), StatusCode::FOUND, "{path}");
        assert!(param(&location_params(&resp), "code").is_some(), "{path}");
    }
}
