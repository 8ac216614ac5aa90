//! API calls: bearer auth, scopes, tweets, duplicates, timelines.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::*;

#[tokio::test]
async fn tweet_appears_in_timeline_and_post_log() {
    let sim = start(1.0).await;
    let t = sim.connect("alice", SCOPES).await;
    let resp = sim.tweet(&t.access, r#"{"text":"hello world"}"#).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert!(resp.headers().get("x-rate-limit-remaining").is_some());
    let body: Value = resp.json().await.expect("json");
    let id = body["data"]["id"].as_str().expect("id").to_owned();
    assert!(id.parse::<u64>().is_ok());
    assert_eq!(body["data"]["text"], "hello world");
    assert_eq!(body["data"]["edit_history_tweet_ids"], json!([id]));

    let resp = sim.tweet(&t.access, r#"{"text":"second"}"#).await;
    assert_eq!(resp.status(), StatusCode::CREATED);

    let me: Value = sim.me(&t.access).await.json().await.expect("json");
    let user_id = me["data"]["id"].as_str().expect("id");
    let timeline: Value = sim
        .http
        .get(sim.url(&format!("/x/2/users/{user_id}/tweets?max_results=5")))
        .bearer_auth(&t.access)
        .send()
        .await
        .expect("timeline")
        .json()
        .await
        .expect("json");
    assert_eq!(timeline["meta"]["result_count"], 2);
    assert_eq!(timeline["data"][0]["text"], "second", "newest first");
    assert_eq!(timeline["data"][1]["id"], id.as_str());
    assert!(timeline["data"][1]["created_at"].as_str().expect("created_at").ends_with('Z'));

    let log = sim.get_json("/_sim/posts?platform=x&username=alice").await;
    let posts = log["posts"].as_array().expect("posts");
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0]["text"], "hello world", "acceptance order");
    assert_eq!(posts[0]["user_id"], user_id);
    assert_eq!(posts[0]["platform"], "x");
    assert_eq!(sim.get_json("/_sim/stats").await["x"]["posts"], 2);
}

#[tokio::test]
async fn timeline_validation_and_empty_timeline() {
    let sim = start(1.0).await;
    let t = sim.connect("alice", SCOPES).await;
    let me: Value = sim.me(&t.access).await.json().await.expect("json");
    let user_id = me["data"]["id"].as_str().expect("id");
    let get = |q: String| sim.http.get(sim.url(&q)).bearer_auth(&t.access).send();
    let empty: Value =
        get(format!("/x/2/users/{user_id}/tweets")).await.expect("get").json().await.expect("json");
    assert_eq!(empty, json!({"meta": {"result_count": 0}}));
    let resp = get(format!("/x/2/users/{user_id}/tweets?max_results=1000")).await.expect("get");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = get("/x/2/users/abc/tweets".to_owned()).await.expect("get");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn duplicate_tweet_is_forbidden_and_not_logged() {
    let sim = start(1.0).await;
    let t = sim.connect("alice", SCOPES).await;
    assert_eq!(sim.tweet(&t.access, r#"{"text":"same"}"#).await.status(), StatusCode::CREATED);
    let resp = sim.tweet(&t.access, r#"{"text":"same"}"#).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        resp.json::<Value>().await.expect("json"),
        json!({"detail":"You are not allowed to create a Tweet with duplicate content.","type":"about:blank","title":"Forbidden","status":403})
    );
    // Another user may say the same thing.
    let b = sim.connect("bob", SCOPES).await;
    assert_eq!(sim.tweet(&b.access, r#"{"text":"same"}"#).await.status(), StatusCode::CREATED);
    assert_eq!(sim.get_json("/_sim/posts").await["posts"].as_array().expect("posts").len(), 2);
}

#[tokio::test]
async fn invalid_tweet_bodies() {
    let sim = start(1.0).await;
    let t = sim.connect("alice", SCOPES).await;
    let long = format!(r#"{{"text":"{}"}}"#, "a".repeat(281));
    for body in [r#"{"text":""}"#, "{}", "not json", "[1]", r#"{"text":5}"#, long.as_str(), ""] {
        let resp = sim.tweet(&t.access, body).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body}");
        let v: Value = resp.json().await.expect("json");
        assert_eq!(v["title"], "Invalid Request", "{body}");
        assert_eq!(v["type"], "https://api.twitter.com/2/problems/invalid-request");
        assert!(v["errors"][0]["message"].is_string());
    }
    let exactly_280 = format!(r#"{{"text":"{}"}}"#, "é".repeat(280));
    assert_eq!(sim.tweet(&t.access, &exactly_280).await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn missing_scope_is_forbidden() {
    let sim = start(1.0).await;
    let t = sim.connect("alice", "tweet.read users.read").await;
    let resp = sim.tweet(&t.access, r#"{"text":"hi"}"#).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(resp.json::<Value>().await.expect("json")["title"], "Forbidden");
}

#[tokio::test]
async fn bad_bearer_tokens_are_401() {
    let sim = start(1.0).await;
    assert_unauthorized(sim.me("nope").await).await;
    let resp = sim.http.get(sim.url("/x/2/users/me")).send().await.expect("get");
    assert_unauthorized(resp).await;
    let resp = sim
        .http
        .post(sim.url("/x/2/tweets"))
        .header("authorization", "Basic abc")
        .body(r#"{"text":"x"}"#)
        .send()
        .await
        .expect("post");
    assert_unauthorized(resp).await;
}
