//! TikTok: PKCE, rotating refresh tokens with reuse counted, user info,
//! Direct Post (pull and file upload), status polling, errors.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::*;

const TOKEN: &str = "/tiktok/open/v2/oauth/token/";

async fn connect(sim: &Sim, user: &str) -> Value {
    let (key, secret) = app("tiktok");
    let p = pkce();
    let params = sim
        .approve(
            "/tiktok/www/v2/auth/authorize/",
            &[
                ("client_key", &key),
                ("scope", "user.info.basic,video.publish"),
                ("response_type", "code"),
                ("redirect_uri", REDIRECT_URI),
                ("state", "st"),
                ("code_challenge", &p.challenge),
                ("code_challenge_method", "S256"),
                ("sim_approve_as", user),
            ],
        )
        .await;
    assert_eq!(param(&params, "scopes").as_deref(), Some("user.info.basic,video.publish"));
    let code = param(&params, "code").expect("code");
    let (status, t) = status_json(
        sim.post_form(
            TOKEN,
            &[
                ("client_key", &key),
                ("client_secret", &secret),
                ("code", &code),
                ("grant_type", "authorization_code"),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &p.verifier),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{t}");
    t
}

async fn refresh(sim: &Sim, rt: &str) -> (StatusCode, Value) {
    let (key, secret) = app("tiktok");
    status_json(
        sim.post_form(
            TOKEN,
            &[
                ("client_key", &key),
                ("client_secret", &secret),
                ("grant_type", "refresh_token"),
                ("refresh_token", rt),
            ],
        )
        .await,
    )
    .await
}

fn init_body(sim: &Sim, title: &str) -> Value {
    json!({
        "post_info": { "title": title, "privacy_level": "SELF_ONLY", "disable_duet": false, "disable_comment": false, "disable_stitch": false },
        "source_info": { "source": "PULL_FROM_URL", "video_url": sim.url("/_sim/media/sample.mp4") },
    })
}

async fn assert_tt(resp: reqwest::Response, status: StatusCode, code: &str) -> Value {
    let (s, body) = status_json(resp).await;
    assert_eq!(s, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["log_id"].is_string());
    body
}

#[tokio::test]
async fn auth_user_info_and_publish() {
    let sim = start(1.0).await;
    let t = connect(&sim, "tt_user").await;
    assert_eq!(t["expires_in"], 86400);
    assert_eq!(t["refresh_expires_in"], 31_536_000);
    assert_eq!(t["token_type"], "Bearer");
    let at = t["access_token"].as_str().expect("at");
    let body = assert_tt(
        sim.get_bearer("/tiktok/open/v2/user/info/?fields=open_id,display_name", at).await,
        StatusCode::OK,
        "ok",
    )
    .await;
    assert_eq!(body["data"]["user"]["open_id"], t["open_id"]);
    assert_eq!(body["data"]["user"]["display_name"], "Tt User");
    assert_tt(
        sim.get_bearer("/tiktok/open/v2/user/info/?fields=follower_count", at).await,
        StatusCode::UNAUTHORIZED,
        "scope_not_authorized",
    )
    .await;
    assert_tt(
        sim.get_bearer("/tiktok/open/v2/user/info/?fields=nope", at).await,
        StatusCode::BAD_REQUEST,
        "invalid_params",
    )
    .await;

    let body = assert_tt(
        sim.post_json("/tiktok/open/v2/post/publish/video/init/", at, &init_body(&sim, "my clip"))
            .await,
        StatusCode::OK,
        "ok",
    )
    .await;
    let publish_id = body["data"]["publish_id"].as_str().expect("publish_id").to_owned();
    let fetch_body = json!({"publish_id": publish_id});
    let fetch = || sim.post_json("/tiktok/open/v2/post/publish/status/fetch/", at, &fetch_body);
    let first = assert_tt(fetch().await, StatusCode::OK, "ok").await;
    assert_eq!(first["data"]["status"], "PROCESSING_DOWNLOAD");
    let done = assert_tt(fetch().await, StatusCode::OK, "ok").await;
    assert_eq!(done["data"]["status"], "PUBLISH_COMPLETE");
    assert_eq!(sim.get_json("/_sim/posts?platform=tiktok").await["posts"][0]["text"], "my clip");

    // FILE_UPLOAD: the upload URL takes the bytes.
    let body = assert_tt(sim.post_json("/tiktok/open/v2/post/publish/video/init/", at, &json!({
        "post_info": { "title": "file clip", "privacy_level": "SELF_ONLY" },
        "source_info": { "source": "FILE_UPLOAD", "video_size": 40, "chunk_size": 40, "total_chunk_count": 1 },
    })).await, StatusCode::OK, "ok").await;
    let upload_url = body["data"]["upload_url"].as_str().expect("upload_url").to_owned();
    let resp = sim
        .http
        .put(upload_url)
        .header("content-type", "video/mp4")
        .header("content-range", "bytes 0-39/40")
        .body(crate::MP4)
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(sim.get_json("/_sim/stats").await["tiktok"]["posts"], 2);

    for bad in [
        json!({}),
        json!({"post_info": {"privacy_level": "SELF_ONLY"}, "source_info": {"source": "PULL_FROM_URL"}}),
        json!({"post_info": {"privacy_level": "EVERYONE"}}),
    ] {
        let (status, _) =
            status_json(sim.post_json("/tiktok/open/v2/post/publish/video/init/", at, &bad).await)
                .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let resp = sim
        .http
        .post(sim.url("/tiktok/open/v2/post/publish/video/init/"))
        .bearer_auth(at)
        .body("nope")
        .send()
        .await
        .expect("post");
    assert_tt(resp, StatusCode::BAD_REQUEST, "invalid_params").await;
}

#[tokio::test]
async fn refresh_rotates_and_reuse_is_counted() {
    let sim = start(1.0).await;
    let t = connect(&sim, "tt_user").await;
    let rt1 = t["refresh_token"].as_str().expect("rt").to_owned();
    let (status, r) = refresh(&sim, &rt1).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let rt2 = r["refresh_token"].as_str().expect("rt").to_owned();
    assert_ne!(rt1, rt2);
    let (status, body) = refresh(&sim, &rt1).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert!(body["log_id"].is_string());
    assert_eq!(sim.get_json("/_sim/stats").await["tiktok"]["refresh_token_reuse"], 1);
    // The newest one still works.
    assert_eq!(refresh(&sim, &rt2).await.0, StatusCode::OK);
}

#[tokio::test]
async fn control_actions_and_errors() {
    let sim = start(1.0).await;
    let t = connect(&sim, "tt_user").await;
    let at = t["access_token"].as_str().expect("at").to_owned();
    let rt = t["refresh_token"].as_str().expect("rt").to_owned();
    sim.control(
        "/_sim/tiktok/accounts/tt_user/remove-scope",
        Some(json!({"scope": "video.publish"})),
    )
    .await;
    assert_tt(
        sim.post_json("/tiktok/open/v2/post/publish/video/init/", &at, &init_body(&sim, "x")).await,
        StatusCode::UNAUTHORIZED,
        "scope_not_authorized",
    )
    .await;
    sim.control("/_sim/tiktok/accounts/tt_user/expire", None).await;
    assert_tt(
        sim.get_bearer("/tiktok/open/v2/user/info/?fields=open_id", &at).await,
        StatusCode::UNAUTHORIZED,
        "access_token_invalid",
    )
    .await;
    let (status, r) = refresh(&sim, &rt).await;
    assert_eq!(status, StatusCode::OK);
    sim.control("/_sim/tiktok/accounts/tt_user/revoke", None).await;
    assert_tt(
        sim.get_bearer(
            "/tiktok/open/v2/user/info/?fields=open_id",
            r["access_token"].as_str().expect("at"),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "access_token_invalid",
    )
    .await;
    assert_eq!(
        refresh(&sim, r["refresh_token"].as_str().expect("rt")).await.1["error"],
        "invalid_grant"
    );

    let t = connect(&sim, "tt_user").await;
    let at = t["access_token"].as_str().expect("at").to_owned();
    sim.control("/_sim/tiktok/reject-content", Some(json!({"for_seconds": 30}))).await;
    assert_tt(
        sim.post_json("/tiktok/open/v2/post/publish/video/init/", &at, &init_body(&sim, "x")).await,
        StatusCode::FORBIDDEN,
        "spam_risk_too_many_posts",
    )
    .await;
    sim.control("/_sim/tiktok/rate-limit", Some(json!({"for_seconds": 30}))).await;
    assert_tt(
        sim.post_json("/tiktok/open/v2/post/publish/video/init/", &at, &init_body(&sim, "x")).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_exceeded",
    )
    .await;

    let (key, _) = app("tiktok");
    let (status, body) = status_json(
        sim.post_form(
            TOKEN,
            &[
                ("client_key", &key),
                ("client_secret", "bad"),
                ("grant_type", "refresh_token"),
                ("refresh_token", "x"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
}
