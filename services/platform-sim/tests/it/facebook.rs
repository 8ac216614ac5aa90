//! Facebook Pages: login, short → long-lived user token, Page token via
//! `me/accounts`, posting to the Page feed, `debug_token`, control actions.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::*;

const SCOPE: &str = "pages_show_list,pages_manage_posts,pages_read_engagement";

/// Returns (long-lived user token, page id, page token).
async fn connect(sim: &Sim, user: &str) -> (String, String, String) {
    let (id, secret) = app("facebook");
    let params = sim
        .approve(
            "/facebook/www/v21.0/dialog/oauth",
            &[
                ("client_id", &id),
                ("redirect_uri", REDIRECT_URI),
                ("state", "st"),
                ("scope", SCOPE),
                ("response_type", "code"),
                ("sim_approve_as", user),
            ],
        )
        .await;
    let code = param(&params, "code").expect("code");
    let (status, short) = status_json(sim.get(&format!("/facebook/graph/v21.0/oauth/access_token?client_id={id}&redirect_uri={}&client_secret={secret}&code={code}", url::form_urlencoded::byte_serialize(REDIRECT_URI.as_bytes()).collect::<String>())).await).await;
    assert_eq!(status, StatusCode::OK, "{short}");
    assert_eq!(short["expires_in"], 3600);
    let (status, long) = status_json(sim.get(&format!("/facebook/graph/v19.0/oauth/access_token?grant_type=fb_exchange_token&client_id={id}&client_secret={secret}&fb_exchange_token={}", short["access_token"].as_str().expect("t"))).await).await;
    assert_eq!(status, StatusCode::OK, "{long}");
    let user_token = long["access_token"].as_str().expect("t").to_owned();
    let (status, accounts) =
        status_json(sim.get_bearer("/facebook/graph/v21.0/me/accounts", &user_token).await).await;
    assert_eq!(status, StatusCode::OK, "{accounts}");
    let page = &accounts["data"][0];
    (
        user_token,
        page["id"].as_str().expect("id").to_owned(),
        page["access_token"].as_str().expect("page token").to_owned(),
    )
}

async fn post(sim: &Sim, token: &str, page_id: &str, message: &str) -> reqwest::Response {
    sim.post_form(
        &format!("/facebook/graph/v21.0/{page_id}/feed"),
        &[("message", message), ("access_token", token)],
    )
    .await
}

#[tokio::test]
async fn page_token_flow_and_posting() {
    let sim = start(1.0).await;
    let (user_token, page_id, page_token) = connect(&sim, "fb_user").await;
    let (_, me) = status_json(sim.get_bearer("/facebook/graph/v21.0/me", &user_token).await).await;
    assert_eq!(me["name"], "Fb User");
    let (_, page) =
        status_json(sim.get_bearer("/facebook/graph/v21.0/me?fields=id,name", &page_token).await)
            .await;
    assert_eq!(page["id"], page_id.as_str());
    assert_eq!(page["name"], "Fb User's Page");

    let (status, body) = status_json(post(&sim, &page_token, &page_id, "hello page").await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["id"].as_str().expect("id").starts_with(&format!("{page_id}_")));
    assert_eq!(
        sim.get_json("/_sim/posts?platform=facebook").await["posts"][0]["text"],
        "hello page"
    );
    // A user token cannot post as the Page; another Page does not exist.
    assert_graph_error(post(&sim, &user_token, &page_id, "x").await, 200, None).await;
    assert_graph_error(post(&sim, &page_token, "123", "x").await, 100, Some(33)).await;
    assert_graph_error(post(&sim, &page_token, &page_id, "").await, 100, None).await;

    // debug_token: the Page token never expires.
    let (id, secret) = app("facebook");
    let (_, dbg) = status_json(
        sim.get(&format!(
            "/facebook/graph/v21.0/debug_token?input_token={page_token}&access_token={id}|{secret}"
        ))
        .await,
    )
    .await;
    assert_eq!(dbg["data"]["is_valid"], true, "{dbg}");
    assert_eq!(dbg["data"]["type"], "PAGE");
    assert_eq!(dbg["data"]["expires_at"], 0);
    assert_eq!(dbg["data"]["profile_id"], page_id.as_str());
}

#[tokio::test]
async fn expired_short_lived_token_cannot_be_exchanged() {
    let sim = start(1.0).await;
    let (id, secret) = app("facebook");
    let params = sim
        .approve(
            "/facebook/www/v21.0/dialog/oauth",
            &[
                ("client_id", &id),
                ("redirect_uri", REDIRECT_URI),
                ("scope", SCOPE),
                ("sim_approve_as", "fb_user"),
            ],
        )
        .await;
    let code = param(&params, "code").expect("code");
    let (_, short) = status_json(
        sim.post_form(
            "/facebook/graph/v21.0/oauth/access_token",
            &[
                ("client_id", &id),
                ("client_secret", &secret),
                ("redirect_uri", REDIRECT_URI),
                ("code", &code),
            ],
        )
        .await,
    )
    .await;
    let short = short["access_token"].as_str().expect("t").to_owned();
    sim.control("/_sim/facebook/accounts/fb_user/expire", None).await;
    assert_graph_error(sim.get(&format!("/facebook/graph/v21.0/oauth/access_token?grant_type=fb_exchange_token&client_id={id}&client_secret={secret}&fb_exchange_token={short}")).await, 190, Some(463)).await;
    assert_graph_error(sim.get(&format!("/facebook/graph/v21.0/oauth/access_token?grant_type=fb_exchange_token&client_id={id}&client_secret=wrong&fb_exchange_token={short}")).await, 1, None).await;
    assert_graph_error(
        sim.post_form(
            "/facebook/graph/v21.0/oauth/access_token",
            &[
                ("client_id", &id),
                ("client_secret", &secret),
                ("redirect_uri", REDIRECT_URI),
                ("code", &code),
            ],
        )
        .await,
        100,
        Some(36009),
    )
    .await;
}

#[tokio::test]
async fn control_actions_kill_page_tokens() {
    let sim = start(1.0).await;
    for (action, subcode) in [
        ("password-change", 460),
        ("deauthorize", 458),
        ("security-checkpoint", 459),
        ("revoke", 458),
        ("expire", 463),
    ] {
        let (_, page_id, page_token) = connect(&sim, "fb_user").await;
        sim.control(&format!("/_sim/facebook/accounts/fb_user/{action}"), None).await;
        let body =
            assert_graph_error(post(&sim, &page_token, &page_id, "x").await, 190, Some(subcode))
                .await;
        assert_eq!(body["error"]["type"], "OAuthException");
        let (id, secret) = app("facebook");
        let (_, dbg) = status_json(
            sim.get(&format!(
                "/facebook/graph/debug_token?input_token={page_token}&access_token={id}|{secret}"
            ))
            .await,
        )
        .await;
        assert_eq!(dbg["data"]["is_valid"], false, "{action}: {dbg}");
        assert_eq!(dbg["data"]["error"]["subcode"], subcode);
    }
    let (_, page_id, page_token) = connect(&sim, "fb_user").await;
    sim.control(
        "/_sim/facebook/accounts/fb_user/remove-scope",
        Some(json!({"scope": "pages_manage_posts"})),
    )
    .await;
    assert_graph_error(post(&sim, &page_token, &page_id, "x").await, 200, None).await;
    let (_, page_id, page_token) = connect(&sim, "fb_user").await;
    sim.control("/_sim/facebook/reject-content", Some(json!({"for_seconds": 30}))).await;
    assert_graph_error(post(&sim, &page_token, &page_id, "x").await, 368, Some(1_390_008)).await;
    sim.control("/_sim/facebook/rate-limit", Some(json!({"for_seconds": 30}))).await;
    let body: Value =
        assert_graph_error(post(&sim, &page_token, &page_id, "x").await, 80001, None).await;
    assert_eq!(body["error"]["is_transient"], true);
    sim.control("/_sim/facebook/outage", Some(json!({"for_seconds": 30, "status": 500}))).await;
    assert_graph_error(post(&sim, &page_token, &page_id, "x").await, 2, None).await;
}
