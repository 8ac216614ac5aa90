//! LinkedIn: auth flow, non-extending refresh token, posts, control actions.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::*;

const AUTHZ: &str = "/linkedin/www/oauth/v2/authorization";
const TOKEN: &str = "/linkedin/www/oauth/v2/accessToken";
const SCOPE: &str = "openid profile w_member_social";

async fn connect(sim: &Sim, user: &str) -> Value {
    let (id, secret) = app("linkedin");
    let params = sim
        .approve(
            AUTHZ,
            &[
                ("response_type", "code"),
                ("client_id", &id),
                ("redirect_uri", REDIRECT_URI),
                ("scope", SCOPE),
                ("state", "s1"),
                ("sim_approve_as", user),
            ],
        )
        .await;
    assert_eq!(param(&params, "state").as_deref(), Some("s1"));
    let code = param(&params, "code").expect("code");
    let (status, body) = status_json(
        sim.post_form(
            TOKEN,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("client_id", &id),
                ("client_secret", &secret),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Single use.
    let (status, again) = status_json(
        sim.post_form(
            TOKEN,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("client_id", &id),
                ("client_secret", &secret),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(again["error"], "invalid_grant");
    body
}

async fn refresh(sim: &Sim, rt: &str) -> (StatusCode, Value) {
    let (id, secret) = app("linkedin");
    status_json(
        sim.post_form(
            TOKEN,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt),
                ("client_id", &id),
                ("client_secret", &secret),
            ],
        )
        .await,
    )
    .await
}

async fn post(sim: &Sim, at: &str, sub: &str, text: &str) -> reqwest::Response {
    sim.http
        .post(sim.url("/linkedin/api/rest/posts"))
        .bearer_auth(at)
        .header("LinkedIn-Version", "202504")
        .header("X-Restli-Protocol-Version", "2.0.0")
        .json(&json!({
            "author": format!("urn:li:person:{sub}"),
            "commentary": text,
            "visibility": "PUBLIC",
            "distribution": { "feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": [] },
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": false,
        }))
        .send()
        .await
        .expect("post")
}

async fn assert_li_401(resp: reqwest::Response, service: u64, code: &str) {
    let (status, body) = status_json(resp).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["serviceErrorCode"], service, "{body}");
    assert_eq!(body["code"], code);
    assert_eq!(body["status"], 401);
}

#[tokio::test]
async fn auth_flow_userinfo_and_post() {
    let sim = start(1.0).await;
    let t = connect(&sim, "lin_user").await;
    assert_eq!(t["expires_in"], 60 * 24 * 3600);
    assert_eq!(t["refresh_token_expires_in"], 365 * 24 * 3600);
    let at = t["access_token"].as_str().expect("at");
    let (status, me) = status_json(sim.get_bearer("/linkedin/api/v2/userinfo", at).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["name"], "Lin User");
    let sub = me["sub"].as_str().expect("sub").to_owned();

    let resp = post(&sim, at, &sub, "hello linkedin").await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let urn = resp
        .headers()
        .get("x-restli-id")
        .and_then(|v| v.to_str().ok())
        .expect("x-restli-id")
        .to_owned();
    assert!(urn.starts_with("urn:li:share:"));
    assert_eq!(post(&sim, at, &sub, "hello linkedin").await.status(), StatusCode::CREATED);
    let stats = sim.get_json("/_sim/stats").await;
    assert_eq!(stats["linkedin"]["posts"], 2);
    assert_eq!(stats["linkedin"]["duplicate_posts"], 1);
    let log = sim.get_json("/_sim/posts?platform=linkedin&username=lin_user").await;
    assert_eq!(log["posts"][0]["text"], "hello linkedin");
    assert_eq!(log["posts"][0]["id"], urn.as_str());

    // Someone else's author URN, missing version, malformed body.
    assert_eq!(post(&sim, at, "someone", "x").await.status(), StatusCode::FORBIDDEN);
    let resp = sim
        .http
        .post(sim.url("/linkedin/api/rest/posts"))
        .bearer_auth(at)
        .body("{}")
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = sim
        .http
        .post(sim.url("/linkedin/api/rest/posts"))
        .bearer_auth(at)
        .header("LinkedIn-Version", "202504")
        .body("nope")
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = sim
        .http
        .post(sim.url("/linkedin/api/rest/posts"))
        .bearer_auth(at)
        .header("LinkedIn-Version", "202504")
        .json(&json!({"commentary": "x"}))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_li_401(
        sim.get_bearer("/linkedin/api/v2/userinfo", "garbage").await,
        65600,
        "INVALID_ACCESS_TOKEN",
    )
    .await;
}

#[tokio::test]
async fn refresh_token_is_not_extended() {
    let sim = start(1_000_000.0).await;
    let t = connect(&sim, "lin_user").await;
    let rt = t["refresh_token"].as_str().expect("rt").to_owned();
    let first_left = t["refresh_token_expires_in"].as_u64().expect("secs");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, r) = refresh(&sim, &rt).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["refresh_token"], rt.as_str(), "same refresh token");
    assert!(r["refresh_token_expires_in"].as_u64().expect("secs") < first_left, "{r}");
    assert_ne!(r["access_token"], t["access_token"]);
    assert_eq!(sim.get_json("/_sim/stats").await["linkedin"]["refreshes"], 1);
}

#[tokio::test]
async fn control_actions() {
    let sim = start(1.0).await;
    let t = connect(&sim, "lin_user").await;
    let at = t["access_token"].as_str().expect("at").to_owned();
    let rt = t["refresh_token"].as_str().expect("rt").to_owned();

    sim.control(
        "/_sim/linkedin/accounts/lin_user/remove-scope",
        Some(json!({"scope": "w_member_social"})),
    )
    .await;
    let (status, body) = status_json(post(&sim, &at, "x", "hi").await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "ACCESS_DENIED");
    assert_eq!(body["serviceErrorCode"], 100);

    sim.control("/_sim/linkedin/accounts/lin_user/expire", None).await;
    assert_li_401(
        sim.get_bearer("/linkedin/api/v2/userinfo", &at).await,
        65602,
        "EXPIRED_ACCESS_TOKEN",
    )
    .await;
    let (status, fresh) = refresh(&sim, &rt).await;
    assert_eq!(status, StatusCode::OK, "refresh still works after expiry");
    let at2 = fresh["access_token"].as_str().expect("at").to_owned();

    let resp = sim.control("/_sim/linkedin/accounts/lin_user/revoke", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_li_401(
        sim.get_bearer("/linkedin/api/v2/userinfo", &at2).await,
        65601,
        "REVOKED_ACCESS_TOKEN",
    )
    .await;
    let (status, body) = refresh(&sim, &rt).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    // Reconnect works; rate limit and content rejection use LinkedIn's forms.
    let t = connect(&sim, "lin_user").await;
    let at = t["access_token"].as_str().expect("at").to_owned();
    let sub = status_json(sim.get_bearer("/linkedin/api/v2/userinfo", &at).await).await.1["sub"]
        .as_str()
        .expect("sub")
        .to_owned();
    sim.control("/_sim/linkedin/reject-content", Some(json!({"for_seconds": 30}))).await;
    let (status, body) = status_json(post(&sim, &at, &sub, "spam").await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["status"], 422);
    sim.control("/_sim/linkedin/rate-limit", Some(json!({"for_seconds": 30}))).await;
    let (status, body) = status_json(post(&sim, &at, &sub, "x").await).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["status"], 429);
}

#[tokio::test]
async fn token_endpoint_errors() {
    let sim = start(1.0).await;
    let (id, _) = app("linkedin");
    let (status, body) = status_json(
        sim.post_form(
            TOKEN,
            &[
                ("grant_type", "authorization_code"),
                ("code", "x"),
                ("redirect_uri", REDIRECT_URI),
                ("client_id", &id),
                ("client_secret", "wrong"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    let (status, body) = status_json(sim.post_form(TOKEN, &[]).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");
    let (status, body) = refresh(&sim, "nope").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    // Unknown scope goes back to the redirect_uri.
    let params = sim
        .approve(
            AUTHZ,
            &[
                ("response_type", "code"),
                ("client_id", &id),
                ("redirect_uri", REDIRECT_URI),
                ("scope", "r_everything"),
                ("state", "s"),
            ],
        )
        .await;
    assert_eq!(param(&params, "error").as_deref(), Some("unauthorized_scope_error"));
    let resp = sim
        .get(&format!("{AUTHZ}?response_type=code&client_id=nope&redirect_uri=x&scope=openid"))
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

/// The ambiguous fault: the post is stored, and the connection closes without a status line.
/// Listing the member's posts needs `r_member_social`, which `w_member_social` does not give.
#[tokio::test]
async fn ambiguous_publish_is_stored_and_unanswered_and_listing_needs_r_member_social() {
    let sim = start(1.0).await;
    let t = connect(&sim, "lin_user").await;
    let at = t["access_token"].as_str().expect("at").to_owned();
    let (_, me) = status_json(sim.get_bearer("/linkedin/api/v2/userinfo", &at).await).await;
    let sub = me["sub"].as_str().expect("sub").to_owned();

    let resp = sim.control("/_sim/linkedin/ambiguous", Some(json!({"count": 1}))).await;
    assert_eq!(resp.json::<Value>().await.expect("json"), json!({"ambiguous_publishes": 1}));
    let lost = sim
        .http
        .post(sim.url("/linkedin/api/rest/posts"))
        .bearer_auth(&at)
        .header("LinkedIn-Version", "202504")
        .json(&json!({
            "author": format!("urn:li:person:{sub}"), "commentary": "lost answer",
            "visibility": "PUBLIC", "distribution": {"feedDistribution": "MAIN_FEED"},
            "lifecycleState": "PUBLISHED",
        }))
        .send()
        .await;
    let e = lost.expect_err("no HTTP answer at all");
    assert!(!e.is_connect() && !e.is_status(), "{e:?}");
    let log = sim.get_json("/_sim/posts?platform=linkedin").await;
    assert_eq!(log["posts"].as_array().map(Vec::len), Some(1), "{log}");
    assert_eq!(log["posts"][0]["text"], "lost answer");
    let stats = sim.get_json("/_sim/stats").await;
    assert_eq!(stats["linkedin"]["lost_answers"], 1);
    // Used up: the next post is answered.
    assert_eq!(post(&sim, &at, &sub, "answered").await.status(), StatusCode::CREATED);

    let urn = format!("urn:li:person:{sub}");
    let list = format!(
        "/linkedin/api/rest/posts?q=author&author={}&count=10",
        url::form_urlencoded::byte_serialize(urn.as_bytes()).collect::<String>()
    );
    let listing = |token: String| {
        let req =
            sim.http.get(sim.url(&list)).bearer_auth(token).header("LinkedIn-Version", "202504");
        async move { status_json(req.send().await.expect("list")).await }
    };
    let (status, body) = listing(at.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "ACCESS_DENIED");

    let (id, _) = app("linkedin");
    let params = sim
        .approve(
            AUTHZ,
            &[
                ("response_type", "code"),
                ("client_id", &id),
                ("redirect_uri", REDIRECT_URI),
                ("scope", "openid w_member_social r_member_social"),
                ("state", "s2"),
                ("sim_approve_as", "lin_user"),
            ],
        )
        .await;
    let code = param(&params, "code").expect("code");
    let (id, secret) = app("linkedin");
    let (_, partner) = status_json(
        sim.post_form(
            TOKEN,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("client_id", &id),
                ("client_secret", &secret),
            ],
        )
        .await,
    )
    .await;
    let (status, body) = listing(partner["access_token"].as_str().expect("at").to_owned()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["elements"][0]["commentary"], "answered");
    assert_eq!(body["elements"][1]["commentary"], "lost answer");
}
