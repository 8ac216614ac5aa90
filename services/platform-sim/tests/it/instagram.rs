//! Instagram: code → short-lived → long-lived, the 24-hour refresh rule,
//! 60-day death, two-step publishing, Graph errors for control actions.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::*;

const SCOPE: &str = "instagram_business_basic,instagram_business_content_publish";

/// Full connect; returns (long-lived token body, user id).
pub async fn connect(sim: &Sim, user: &str) -> (Value, String) {
    let (id, secret) = app("instagram");
    let params = sim
        .approve(
            "/instagram/api/oauth/authorize",
            &[
                ("client_id", &id),
                ("redirect_uri", REDIRECT_URI),
                ("response_type", "code"),
                ("scope", SCOPE),
                ("state", "st"),
                ("sim_approve_as", user),
            ],
        )
        .await;
    let code = param(&params, "code").expect("code");
    assert!(!code.ends_with("#_"));
    let (status, short) = status_json(
        sim.post_form(
            "/instagram/api/oauth/access_token",
            &[
                ("client_id", &id),
                ("client_secret", &secret),
                ("grant_type", "authorization_code"),
                ("redirect_uri", REDIRECT_URI),
                ("code", &code),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{short}");
    let user_id = short["user_id"].as_u64().expect("numeric user_id").to_string();
    let short_token = short["access_token"].as_str().expect("token");
    let (status, long) = status_json(
        sim.get(&format!("/instagram/graph/access_token?grant_type=ig_exchange_token&client_secret={secret}&access_token={short_token}")).await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{long}");
    assert_eq!(long["token_type"], "bearer");
    (long, user_id)
}

async fn refresh(sim: &Sim, token: &str) -> reqwest::Response {
    sim.get(&format!(
        "/instagram/graph/refresh_access_token?grant_type=ig_refresh_token&access_token={token}"
    ))
    .await
}

pub async fn publish(sim: &Sim, token: &str, user_id: &str, caption: &str) -> reqwest::Response {
    let image = sim.url("/_sim/media/sample.jpg");
    let (status, c) = status_json(
        sim.post_form(
            &format!("/instagram/graph/v21.0/{user_id}/media"),
            &[("image_url", &image), ("caption", caption), ("access_token", token)],
        )
        .await,
    )
    .await;
    if status != StatusCode::OK {
        return sim
            .post_form(
                &format!("/instagram/graph/v21.0/{user_id}/media"),
                &[("image_url", &image), ("caption", caption), ("access_token", token)],
            )
            .await;
    }
    let creation_id = c["id"].as_str().expect("container id").to_owned();
    sim.post_form(
        &format!("/instagram/graph/v21.0/{user_id}/media_publish"),
        &[("creation_id", &creation_id), ("access_token", token)],
    )
    .await
}

#[tokio::test]
async fn auth_me_and_publish() {
    let sim = start(1.0).await;
    let (long, user_id) = connect(&sim, "insta_user").await;
    assert_eq!(long["expires_in"], 60 * 24 * 3600);
    let token = long["access_token"].as_str().expect("token");
    let (status, me) =
        status_json(sim.get_bearer("/instagram/graph/me?fields=user_id,username", token).await)
            .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["user_id"], user_id.as_str());
    assert_eq!(me["username"], "insta_user");

    let (status, media) = status_json(publish(&sim, token, &user_id, "my caption").await).await;
    assert_eq!(status, StatusCode::OK, "{media}");
    assert!(media["id"].as_str().expect("media id").parse::<u64>().is_ok());
    let log = sim.get_json("/_sim/posts?platform=instagram").await;
    assert_eq!(log["posts"][0]["text"], "my caption");
    let (_, limit) = status_json(
        sim.get_bearer(&format!("/instagram/graph/{user_id}/content_publishing_limit"), token)
            .await,
    )
    .await;
    assert_eq!(limit["data"][0]["quota_usage"], 1);

    // Another user's id, missing image_url, unknown creation_id, unknown field.
    assert_graph_error(
        sim.post_form(
            "/instagram/graph/1/media",
            &[("image_url", "http://x/y.jpg"), ("access_token", token)],
        )
        .await,
        100,
        Some(33),
    )
    .await;
    assert_graph_error(
        sim.post_form(
            &format!("/instagram/graph/{user_id}/media"),
            &[("caption", "x"), ("access_token", token)],
        )
        .await,
        100,
        None,
    )
    .await;
    assert_graph_error(
        sim.post_form(
            &format!("/instagram/graph/{user_id}/media_publish"),
            &[("creation_id", "999"), ("access_token", token)],
        )
        .await,
        100,
        None,
    )
    .await;
    assert_graph_error(
        sim.get_bearer("/instagram/graph/me?fields=secrets", token).await,
        100,
        None,
    )
    .await;
    assert_graph_error(sim.get("/instagram/graph/me").await, 104, None).await;
    assert_graph_error(sim.get_bearer("/instagram/graph/me", "garbage").await, 190, None).await;
}

#[tokio::test]
async fn refresh_needs_a_day_old_long_lived_token() {
    let sim = start(1.0).await;
    let (long, _) = connect(&sim, "insta_user").await;
    let token = long["access_token"].as_str().expect("token");
    let body = assert_graph_error(refresh(&sim, token).await, 100, None).await;
    assert!(body["error"]["message"].as_str().expect("msg").contains("24 hours"), "{body}");
    let (status, _) = status_json(
        sim.get(&format!(
            "/instagram/graph/refresh_access_token?grant_type=wrong&access_token={token}"
        ))
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn refreshed_token_lives_unrefreshed_token_dies() {
    // 60 days ≈ 0.5 s, 24 h ≈ 9 ms.
    let sim = start(10_000_000.0).await;
    let (long, _) = connect(&sim, "insta_user").await;
    let old = long["access_token"].as_str().expect("token").to_owned();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let (status, fresh) = status_json(refresh(&sim, &old).await).await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    assert_eq!(fresh["expires_in"], 1);
    let new = fresh["access_token"].as_str().expect("token").to_owned();
    assert_ne!(new, old);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_graph_error(sim.get_bearer("/instagram/graph/me", &old).await, 190, Some(463)).await;
    // An expired token can no longer be refreshed.
    assert_graph_error(refresh(&sim, &old).await, 190, Some(463)).await;
    assert_eq!(sim.get_json("/_sim/stats").await["instagram"]["refreshes"], 1);
}

#[tokio::test]
async fn control_actions_map_to_graph_errors() {
    let sim = start(1.0).await;
    for (action, code, subcode) in [
        ("expire", 190, Some(463)),
        ("password-change", 190, Some(460)),
        ("security-checkpoint", 190, Some(459)),
        ("deauthorize", 190, Some(458)),
        ("revoke", 190, Some(458)),
    ] {
        let (long, _) = connect(&sim, "insta_user").await;
        let token = long["access_token"].as_str().expect("token");
        let resp =
            sim.control(&format!("/_sim/instagram/accounts/insta_user/{action}"), None).await;
        assert_eq!(resp.status(), StatusCode::OK, "{action}");
        assert_graph_error(sim.get_bearer("/instagram/graph/me", token).await, code, subcode).await;
        assert_graph_error(refresh(&sim, token).await, code, subcode).await;
    }
    let (long, user_id) = connect(&sim, "insta_user").await;
    let token = long["access_token"].as_str().expect("token");
    sim.control(
        "/_sim/instagram/accounts/insta_user/remove-scope",
        Some(json!({"scope": "instagram_business_content_publish"})),
    )
    .await;
    assert_graph_error(publish(&sim, token, &user_id, "x").await, 10, None).await;

    let (long, user_id) = connect(&sim, "insta_user").await;
    let token = long["access_token"].as_str().expect("token");
    sim.control("/_sim/instagram/reject-content", Some(json!({"for_seconds": 30}))).await;
    assert_graph_error(publish(&sim, token, &user_id, "x").await, 368, Some(1_390_008)).await;
    sim.control("/_sim/instagram/rate-limit", Some(json!({"for_seconds": 30}))).await;
    let resp = sim.get_bearer("/instagram/graph/me", token).await;
    assert!(resp.headers().get("x-business-use-case-usage").is_some());
    let body = assert_graph_error(resp, 80002, None).await;
    assert_eq!(body["error"]["is_transient"], true);
}

#[tokio::test]
async fn code_exchange_errors_use_instagram_format() {
    let sim = start(1.0).await;
    let (id, secret) = app("instagram");
    let (status, body) = status_json(
        sim.post_form(
            "/instagram/api/oauth/access_token",
            &[
                ("client_id", &id),
                ("client_secret", &secret),
                ("grant_type", "authorization_code"),
                ("redirect_uri", REDIRECT_URI),
                ("code", "bogus"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_type"], "OAuthException");
    assert_eq!(body["code"], 400);
    let (status, body) =
        status_json(sim.post_form("/instagram/api/oauth/access_token", &[]).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error_message"].is_string());
    let resp = sim.get(&format!("/instagram/api/oauth/authorize?client_id={id}&redirect_uri=x&response_type=code&scope={SCOPE}")).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}
