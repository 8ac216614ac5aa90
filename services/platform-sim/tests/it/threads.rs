//! Threads: code → short-lived → long-lived on graph.threads.net, the 24-hour
//! refresh rule, TEXT containers and publishing, Graph errors.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::*;

async fn connect(sim: &Sim, user: &str) -> (Value, String) {
    let (id, secret) = app("threads");
    let params = sim
        .approve(
            "/threads/www/oauth/authorize",
            &[
                ("client_id", &id),
                ("redirect_uri", REDIRECT_URI),
                ("scope", "threads_basic,threads_content_publish"),
                ("response_type", "code"),
                ("state", "st"),
                ("sim_approve_as", user),
            ],
        )
        .await;
    let code = param(&params, "code").expect("code");
    let (status, short) = status_json(
        sim.post_form(
            "/threads/graph/oauth/access_token",
            &[
                ("client_id", &id),
                ("client_secret", &secret),
                ("code", &code),
                ("grant_type", "authorization_code"),
                ("redirect_uri", REDIRECT_URI),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{short}");
    let user_id = short["user_id"].as_u64().expect("numeric").to_string();
    // The code is single use, answered in Graph's format.
    assert_graph_error(
        sim.post_form(
            "/threads/graph/oauth/access_token",
            &[
                ("client_id", &id),
                ("client_secret", &secret),
                ("code", &code),
                ("grant_type", "authorization_code"),
                ("redirect_uri", REDIRECT_URI),
            ],
        )
        .await,
        100,
        Some(36009),
    )
    .await;
    let (status, long) = status_json(
        sim.get(&format!("/threads/graph/v1.0/access_token?grant_type=th_exchange_token&client_secret={secret}&access_token={}", short["access_token"].as_str().expect("t"))).await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{long}");
    (long, user_id)
}

async fn publish(sim: &Sim, token: &str, user_id: &str, text: &str) -> reqwest::Response {
    let (status, c) = status_json(
        sim.post_form(
            &format!("/threads/graph/v1.0/{user_id}/threads"),
            &[("media_type", "TEXT"), ("text", text), ("access_token", token)],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    let creation_id = c["id"].as_str().expect("id").to_owned();
    sim.post_form(
        &format!("/threads/graph/v1.0/{user_id}/threads_publish"),
        &[("creation_id", &creation_id), ("access_token", token)],
    )
    .await
}

#[tokio::test]
async fn auth_publish_and_errors() {
    let sim = start(1.0).await;
    let (long, user_id) = connect(&sim, "thread_user").await;
    let token = long["access_token"].as_str().expect("t");
    let (_, me) =
        status_json(sim.get_bearer("/threads/graph/me?fields=id,username", token).await).await;
    assert_eq!(me["id"], user_id.as_str());
    assert_eq!(me["username"], "thread_user");
    let (status, body) = status_json(publish(&sim, token, &user_id, "hello threads").await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let log = sim.get_json("/_sim/posts?platform=threads&username=thread_user").await;
    assert_eq!(log["posts"][0]["text"], "hello threads");
    // TEXT without text, too long, missing media_type; too-young refresh.
    assert_graph_error(
        sim.post_form(
            &format!("/threads/graph/{user_id}/threads"),
            &[("media_type", "TEXT"), ("access_token", token)],
        )
        .await,
        100,
        None,
    )
    .await;
    let long_text = "a".repeat(501);
    assert_graph_error(
        sim.post_form(
            &format!("/threads/graph/{user_id}/threads"),
            &[("media_type", "TEXT"), ("text", &long_text), ("access_token", token)],
        )
        .await,
        100,
        None,
    )
    .await;
    assert_graph_error(
        sim.post_form(
            &format!("/threads/graph/{user_id}/threads"),
            &[("text", "x"), ("access_token", token)],
        )
        .await,
        100,
        None,
    )
    .await;
    assert_graph_error(
        sim.get(&format!(
            "/threads/graph/refresh_access_token?grant_type=th_refresh_token&access_token={token}"
        ))
        .await,
        100,
        None,
    )
    .await;

    sim.control("/_sim/threads/accounts/thread_user/password-change", None).await;
    assert_graph_error(publish_err(&sim, token, &user_id).await, 190, Some(460)).await;
    sim.control("/_sim/threads/rate-limit", Some(json!({"for_seconds": 30}))).await;
    let (long, _) = connect(&sim, "thread_user").await;
    assert_graph_error(
        sim.get_bearer("/threads/graph/me", long["access_token"].as_str().expect("t")).await,
        4,
        None,
    )
    .await;
}

async fn publish_err(sim: &Sim, token: &str, user_id: &str) -> reqwest::Response {
    sim.post_form(
        &format!("/threads/graph/{user_id}/threads"),
        &[("media_type", "TEXT"), ("text", "x"), ("access_token", token)],
    )
    .await
}

#[tokio::test]
async fn refresh_after_a_day_and_death_after_sixty() {
    let sim = start(10_000_000.0).await;
    let (long, _) = connect(&sim, "thread_user").await;
    let old = long["access_token"].as_str().expect("t").to_owned();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let (status, fresh) = status_json(
        sim.get(&format!(
            "/threads/graph/refresh_access_token?grant_type=th_refresh_token&access_token={old}"
        ))
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_graph_error(sim.get_bearer("/threads/graph/me", &old).await, 190, Some(463)).await;
}
