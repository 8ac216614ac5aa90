//! Authorize page, code exchange, PKCE, client auth, refresh rotation.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::*;

fn authorize_pairs(p: &Pkce) -> Vec<(&str, &str)> {
    vec![
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", REDIRECT_URI),
        ("scope", SCOPES),
        ("state", "xyz"),
        ("code_challenge", &p.challenge),
        ("code_challenge_method", "S256"),
    ]
}

#[tokio::test]
async fn full_code_pkce_flow() {
    let sim = start(1.0).await;
    let t = sim.connect("alice", SCOPES).await;
    assert_eq!(t.body["token_type"], "bearer");
    assert_eq!(t.body["expires_in"], 7200);
    assert_eq!(t.body["scope"], SCOPES);
    assert!(t.refresh.is_some());
    assert!(t.access.len() >= 43, "at least 32 random bytes");

    let me: Value = sim.me(&t.access).await.json().await.expect("json");
    assert_eq!(me["data"]["username"], "alice");
    assert_eq!(me["data"]["name"], "Alice");
    assert!(me["data"]["id"].as_str().expect("id").parse::<u64>().is_ok());
}

#[tokio::test]
async fn time_scale_is_applied_to_expires_in() {
    let sim = start(720.0).await;
    let t = sim.connect("alice", SCOPES).await;
    assert_eq!(t.body["expires_in"], 10);
}

#[tokio::test]
async fn same_username_keeps_its_id() {
    let sim = start(1.0).await;
    let a = sim.connect("bob", SCOPES).await;
    let b = sim.connect("bob", SCOPES).await;
    let c = sim.connect("carol", SCOPES).await;
    let id = |r: Value| r["data"]["id"].as_str().expect("id").to_owned();
    let ida = id(sim.me(&a.access).await.json().await.expect("json"));
    let idb = id(sim.me(&b.access).await.json().await.expect("json"));
    let idc = id(sim.me(&c.access).await.json().await.expect("json"));
    assert_eq!(ida, idb);
    assert_ne!(ida, idc);
    assert_ne!(a.access, b.access);
}

#[tokio::test]
async fn consent_page_approve_and_deny() {
    let sim = start(1.0).await;
    let p = pkce();
    let resp = sim.http.get(sim.authorize_url(&authorize_pairs(&p))).send().await.expect("page");
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.expect("html");
    for needle in
        [CLIENT_ID, "tweet.write", "offline.access", "name=\"username\"", "approve", "deny"]
    {
        assert!(html.contains(needle), "consent page lacks {needle}");
    }

    let mut fields = authorize_pairs(&p);
    fields.push(("username", "dave"));
    fields.push(("decision", "approve"));
    let resp = sim
        .http
        .post(sim.url("/x/i/oauth2/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&fields))
        .send()
        .await
        .expect("approve");
    assert_eq!(resp.status(), StatusCode::FOUND);
    let params = location_params(&resp);
    assert_eq!(param(&params, "state").as_deref(), Some("xyz"));
    let code = param(&params, "code").expect("code");
    let t = tokens_of(sim.exchange(&code, &p.verifier).await).await;
    let me: Value = sim.me(&t.access).await.json().await.expect("json");
    assert_eq!(me["data"]["username"], "dave");

    let mut fields = authorize_pairs(&p);
    fields.push(("decision", "deny"));
    let resp = sim
        .http
        .post(sim.url("/x/i/oauth2/authorize"))
        .body(form(&fields))
        .send()
        .await
        .expect("deny");
    assert_eq!(resp.status(), StatusCode::FOUND);
    let params = location_params(&resp);
    assert_eq!(param(&params, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&params, "state").as_deref(), Some("xyz"));
    assert_eq!(param(&params, "code"), None);
}

#[tokio::test]
async fn authorize_validation_errors_never_redirect() {
    let sim = start(1.0).await;
    let p = pkce();
    let base = authorize_pairs(&p);
    let without = |name: &str| -> Vec<(&str, &str)> {
        base.iter().copied().filter(|(k, _)| *k != name).collect()
    };
    let replace = |name: &'static str, value: &'static str| -> Vec<(&str, &str)> {
        base.iter().map(|&(k, v)| if k == name { (k, value) } else { (k, v) }).collect()
    };
    let cases = vec![
        ("unknown client", replace("client_id", "nope")),
        ("response_type token", replace("response_type", "token")),
        ("bad method", replace("code_challenge_method", "S512")),
        ("unknown scope", replace("scope", "tweet.read everything")),
        ("bad redirect", replace("redirect_uri", "not a url")),
        ("no challenge", without("code_challenge")),
        ("no state", without("state")),
        ("no redirect", without("redirect_uri")),
        ("no client", without("client_id")),
    ];
    for (name, pairs) in cases {
        let resp = sim.http.get(sim.authorize_url(&pairs)).send().await.expect("authorize");
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{name}");
        assert!(resp.headers().get("location").is_none(), "{name} redirected");
        let html = resp.text().await.expect("text");
        assert!(html.contains("Something went wrong"), "{name}");
    }
    // A forged consent form is validated again.
    let resp = sim
        .http
        .post(sim.url("/x/i/oauth2/authorize"))
        .body(form(&[("client_id", "nope"), ("decision", "approve")]))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // Garbage body: still the error page, no panic.
    let resp = sim
        .http
        .post(sim.url("/x/i/oauth2/authorize"))
        .body(vec![0xff, 0xfe, b'%', b'&', b'='])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn plain_challenge_is_accepted() {
    let sim = start(1.0).await;
    let resp = sim
        .http
        .get(sim.authorize_url(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("scope", SCOPES),
            ("state", "s"),
            ("code_challenge", "challenge"),
            ("code_challenge_method", "plain"),
            ("sim_approve_as", "erin"),
        ]))
        .send()
        .await
        .expect("authorize");
    let code = param(&location_params(&resp), "code").expect("code");
    tokens_of(sim.exchange(&code, "challenge").await).await;
}

#[tokio::test]
async fn wrong_verifier_is_rejected() {
    let sim = start(1.0).await;
    let p = pkce();
    let code = sim.code_for("alice", SCOPES, &p).await;
    assert_invalid_token_value(sim.exchange(&code, "not-the-verifier").await).await;
}

#[tokio::test]
async fn code_is_single_use() {
    let sim = start(1.0).await;
    let p = pkce();
    let code = sim.code_for("alice", SCOPES, &p).await;
    tokens_of(sim.exchange(&code, &p.verifier).await).await;
    assert_invalid_token_value(sim.exchange(&code, &p.verifier).await).await;
    assert_invalid_token_value(sim.exchange("made-up-code", &p.verifier).await).await;
}

#[tokio::test]
async fn wrong_redirect_uri_is_rejected() {
    let sim = start(1.0).await;
    let p = pkce();
    let code = sim.code_for("alice", SCOPES, &p).await;
    let resp = sim
        .token_request(
            Some(basic(CLIENT_ID, CLIENT_SECRET)),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "http://127.0.0.1:9/other"),
                ("code_verifier", &p.verifier),
            ],
        )
        .await;
    assert_invalid_token_value(resp).await;
}

#[tokio::test]
async fn client_authentication() {
    let sim = start(1.0).await;
    let unauthorized = json!({"error":"unauthorized_client","error_description":"Missing valid authorization header"});
    let grant = [("grant_type", "refresh_token"), ("refresh_token", "x")];
    let cases = [
        ("wrong secret", Some(basic(CLIENT_ID, "wrong"))),
        ("unknown client", Some(basic("nobody", CLIENT_SECRET))),
        ("bad base64", Some("Basic %%%not-base64".to_owned())),
        (
            "no colon",
            Some(format!(
                "Basic {}",
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "nocolon")
            )),
        ),
        ("no auth at all", None),
    ];
    for (name, auth) in cases {
        let resp = sim.token_request(auth, &grant).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(resp.json::<Value>().await.expect("json"), unauthorized, "{name}");
    }
    // A confidential client may not skip Basic by sending only client_id.
    let resp = sim
        .token_request(
            None,
            &[("client_id", CLIENT_ID), ("grant_type", "refresh_token"), ("refresh_token", "x")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // RFC 6749 §2.3.1: id and secret are form-urlencoded before base64.
    let resp = sim.token_request(Some(basic("test%2Dclient", "test-secret")), &grant).await;
    assert_invalid_token_value(resp).await;

    // Unsupported / missing grant types.
    let resp = sim
        .token_request(Some(basic(CLIENT_ID, CLIENT_SECRET)), &[("grant_type", "password")])
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(resp.json::<Value>().await.expect("json")["error"], "unsupported_grant_type");
    let resp = sim.token_request(Some(basic(CLIENT_ID, CLIENT_SECRET)), &[]).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(resp.json::<Value>().await.expect("json")["error"], "invalid_request");
}

#[tokio::test]
async fn public_client_uses_client_id_field() {
    let sim = start(1.0).await;
    let p = pkce();
    let resp = sim
        .http
        .get(sim.authorize_url(&[
            ("response_type", "code"),
            ("client_id", PUBLIC_CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("scope", SCOPES),
            ("state", "s"),
            ("code_challenge", &p.challenge),
            ("code_challenge_method", "S256"),
            ("sim_approve_as", "frank"),
        ]))
        .send()
        .await
        .expect("authorize");
    let code = param(&location_params(&resp), "code").expect("code");
    let t = tokens_of(
        sim.token_request(
            None,
            &[
                ("client_id", PUBLIC_CLIENT_ID),
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &p.verifier),
            ],
        )
        .await,
    )
    .await;
    let refresh = t.refresh.expect("refresh token");
    // The refresh token is bound to the client that got it.
    assert_invalid_token_value(sim.refresh(&refresh).await).await;
    tokens_of(
        sim.token_request(
            None,
            &[
                ("client_id", PUBLIC_CLIENT_ID),
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
            ],
        )
        .await,
    )
    .await;
}

#[tokio::test]
async fn no_refresh_token_without_offline_access() {
    let sim = start(1.0).await;
    let t = sim.connect("alice", "tweet.read users.read").await;
    assert!(t.refresh.is_none());
    assert!(t.body.get("refresh_token").is_none());
}

#[tokio::test]
async fn refresh_rotates() {
    let sim = start(1.0).await;
    let first = sim.connect("alice", SCOPES).await;
    let rt1 = first.refresh.clone().expect("refresh");
    let second = tokens_of(sim.refresh(&rt1).await).await;
    let rt2 = second.refresh.clone().expect("rotated refresh");
    assert_ne!(rt1, rt2);
    assert_ne!(first.access, second.access);
    assert_eq!(second.body["scope"], SCOPES);
    assert_eq!(sim.me(&second.access).await.status(), StatusCode::OK);
    // The previous access token stays valid until its own expiry.
    assert_eq!(sim.me(&first.access).await.status(), StatusCode::OK);
    let third = tokens_of(sim.refresh(&rt2).await).await;
    assert_eq!(sim.me(&third.access).await.status(), StatusCode::OK);

    let stats = sim.get_json("/_sim/stats").await;
    assert_eq!(stats["x"]["refreshes"], 2);
    assert_eq!(stats["x"]["tokens_issued"], 3);
    assert_eq!(stats["x"]["refresh_token_reuse"], 0);
}

#[tokio::test]
async fn refresh_token_reuse_revokes_the_family() {
    let sim = start(1.0).await;
    let other = sim.connect("alice", SCOPES).await; // a separate authorization
    let first = sim.connect("alice", SCOPES).await;
    let rt1 = first.refresh.clone().expect("refresh");
    let second = tokens_of(sim.refresh(&rt1).await).await;

    assert_invalid_token_value(sim.refresh(&rt1).await).await;

    // Everything descending from that authorization is dead...
    assert_invalid_token_value(sim.refresh(&second.refresh.clone().expect("rt2")).await).await;
    assert_unauthorized(sim.me(&second.access).await).await;
    assert_unauthorized(sim.me(&first.access).await).await;
    // ...but another authorization of the same user is not.
    assert_eq!(sim.me(&other.access).await.status(), StatusCode::OK);
    tokens_of(sim.refresh(&other.refresh.expect("rt")).await).await;

    let stats = sim.get_json("/_sim/stats").await;
    assert_eq!(stats["x"]["refresh_token_reuse"], 1);
}

#[tokio::test]
async fn revoke_endpoint() {
    let sim = start(1.0).await;
    let t = sim.connect("alice", SCOPES).await;
    let rt = t.refresh.clone().expect("refresh");
    let resp = sim
        .http
        .post(sim.url("/x/2/oauth2/revoke"))
        .header("authorization", basic(CLIENT_ID, CLIENT_SECRET))
        .body(form(&[("token", &rt), ("token_type_hint", "refresh_token")]))
        .send()
        .await
        .expect("revoke");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.expect("json"), json!({"revoked": true}));
    assert_invalid_token_value(sim.refresh(&rt).await).await;
    assert_unauthorized(sim.me(&t.access).await).await;
}

#[tokio::test]
async fn access_token_expires_in_scaled_time() {
    // 2 h at 7200x is one real second.
    let sim = start(7200.0).await;
    let t = sim.connect("alice", SCOPES).await;
    assert_eq!(t.body["expires_in"], 1);
    assert_eq!(sim.me(&t.access).await.status(), StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_unauthorized(sim.me(&t.access).await).await;
    // The refresh token (6 platform months) still works.
    let fresh = tokens_of(sim.refresh(&t.refresh.expect("rt")).await).await;
    assert_eq!(sim.me(&fresh.access).await.status(), StatusCode::OK);
}
