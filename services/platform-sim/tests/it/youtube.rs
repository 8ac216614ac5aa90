//! YouTube / Google: PKCE, offline refresh tokens, non-rotating refresh,
//! testing-mode 7-day refresh tokens, revoke, resumable upload, errors.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::*;

const SCOPE: &str = "https://www.googleapis.com/auth/youtube.upload https://www.googleapis.com/auth/youtube.readonly";

async fn connect_with(sim: &Sim, user: &str, prompt: Option<&str>) -> Value {
    let (id, secret) = app("youtube");
    let p = pkce();
    let mut pairs = vec![
        ("client_id", id.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("response_type", "code"),
        ("scope", SCOPE),
        ("access_type", "offline"),
        ("state", "st"),
        ("code_challenge", &p.challenge),
        ("code_challenge_method", "S256"),
        ("sim_approve_as", user),
    ];
    if let Some(prompt) = prompt {
        pairs.push(("prompt", prompt));
    }
    let params = sim.approve("/google/accounts/o/oauth2/v2/auth", &pairs).await;
    let code = param(&params, "code").expect("code");
    let (status, t) = status_json(
        sim.post_form(
            "/google/oauth2/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("client_id", &id),
                ("client_secret", &secret),
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
    let (id, secret) = app("youtube");
    status_json(
        sim.token_request_to(
            "/google/oauth2/token",
            Some(basic(&id, &secret)),
            &[("grant_type", "refresh_token"), ("refresh_token", rt)],
        )
        .await,
    )
    .await
}

impl Sim {
    pub async fn token_request_to(
        &self,
        path: &str,
        auth: Option<String>,
        pairs: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(pairs));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send().await.expect("token")
    }
}

async fn upload(sim: &Sim, at: &str, title: &str, bytes: &'static [u8]) -> reqwest::Response {
    let resp = sim
        .http
        .post(sim.url("/google/apis/upload/youtube/v3/videos?uploadType=resumable&part=snippet,status"))
        .bearer_auth(at)
        .header("X-Upload-Content-Type", "video/mp4")
        .json(&json!({ "snippet": { "title": title, "description": "d" }, "status": { "privacyStatus": "private" } }))
        .send()
        .await
        .expect("init");
    if resp.status() != StatusCode::OK {
        return resp;
    }
    let location =
        resp.headers().get("location").and_then(|v| v.to_str().ok()).expect("Location").to_owned();
    assert!(location.starts_with(&sim.base), "{location}");
    sim.http
        .put(location)
        .bearer_auth(at)
        .header("content-type", "video/mp4")
        .body(bytes)
        .send()
        .await
        .expect("put")
}

async fn assert_google_api(resp: reqwest::Response, status: StatusCode, reason: &str) -> Value {
    let (s, body) = status_json(resp).await;
    assert_eq!(s, status, "{body}");
    assert_eq!(body["error"]["code"], status.as_u16());
    assert_eq!(body["error"]["errors"][0]["reason"], reason, "{body}");
    body
}

#[tokio::test]
async fn channel_and_resumable_upload() {
    let sim = start(1.0).await;
    let t = connect_with(&sim, "yt_user", None).await;
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 3600);
    let at = t["access_token"].as_str().expect("at");
    let (status, ch) = status_json(
        sim.get_bearer("/google/apis/youtube/v3/channels?part=id,snippet&mine=true", at).await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{ch}");
    assert!(ch["items"][0]["id"].as_str().expect("id").starts_with("UC"));
    assert_eq!(ch["items"][0]["snippet"]["title"], "Yt User");

    let (status, video) = status_json(upload(&sim, at, "My video", crate::MP4).await).await;
    assert_eq!(status, StatusCode::OK, "{video}");
    assert_eq!(video["kind"], "youtube#video");
    assert_eq!(video["snippet"]["channelId"], ch["items"][0]["id"]);
    assert_eq!(video["status"]["privacyStatus"], "private");
    assert_eq!(sim.get_json("/_sim/posts?platform=youtube").await["posts"][0]["text"], "My video");
    assert_google_api(
        upload(&sim, at, "empty", b"").await,
        StatusCode::BAD_REQUEST,
        "mediaBodyRequired",
    )
    .await;
    assert_google_api(
        upload(&sim, at, &"t".repeat(101), crate::MP4).await,
        StatusCode::BAD_REQUEST,
        "invalidTitle",
    )
    .await;
    assert_google_api(
        sim.get_bearer("/google/apis/youtube/v3/channels?mine=true", at).await,
        StatusCode::BAD_REQUEST,
        "required",
    )
    .await;
    let body = assert_google_api(
        sim.get_bearer("/google/apis/youtube/v3/channels?part=id&mine=true", "bad").await,
        StatusCode::UNAUTHORIZED,
        "authError",
    )
    .await;
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
}

#[tokio::test]
async fn refresh_does_not_rotate_and_revoke_kills_it() {
    let sim = start(1.0).await;
    let t = connect_with(&sim, "yt_user", None).await;
    let rt = t["refresh_token"].as_str().expect("rt").to_owned();
    for _ in 0..2 {
        let (status, r) = refresh(&sim, &rt).await;
        assert_eq!(status, StatusCode::OK, "{r}");
        assert!(r.get("refresh_token").is_none(), "no rotation");
    }
    // Reconnecting without prompt=consent yields no new refresh token.
    let again = connect_with(&sim, "yt_user", None).await;
    assert!(again.get("refresh_token").is_none(), "{again}");
    let again = connect_with(&sim, "yt_user", Some("consent")).await;
    assert!(again["refresh_token"].is_string());

    let resp = sim.post_form("/google/oauth2/revoke", &[("token", &rt)]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let (status, body) = refresh(&sim, &rt).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
    );
    let (status, _) =
        status_json(sim.post_form("/google/oauth2/revoke", &[("token", &rt)]).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn pkce_and_client_errors() {
    let sim = start(1.0).await;
    let (id, secret) = app("youtube");
    let p = pkce();
    let params = sim
        .approve(
            "/google/accounts/o/oauth2/v2/auth",
            &[
                ("client_id", &id),
                ("redirect_uri", REDIRECT_URI),
                ("response_type", "code"),
                ("scope", SCOPE),
                ("code_challenge", &p.challenge),
                ("code_challenge_method", "S256"),
                ("sim_approve_as", "yt_user"),
            ],
        )
        .await;
    let code = param(&params, "code").expect("code");
    let (status, body) = status_json(
        sim.post_form(
            "/google/oauth2/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("client_id", &id),
                ("client_secret", &secret),
                ("code_verifier", "wrong"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    let (status, body) = status_json(
        sim.post_form(
            "/google/oauth2/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", "x"),
                ("client_id", &id),
                ("client_secret", "nope"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    let (status, body) = status_json(
        sim.post_form("/google/oauth2/token", &[("client_id", &id), ("client_secret", &secret)])
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let resp = sim.get("/google/accounts/o/oauth2/v2/auth?client_id=nope&redirect_uri=http://x/cb&response_type=code&scope=openid").await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn testing_mode_refresh_tokens_die_after_seven_days() {
    // 7 days ≈ 0.6 s (rounded up to 1 s on the wire).
    let sim = start_with(1_000_000.0, true).await;
    let t = connect_with(&sim, "yt_user", None).await;
    assert_eq!(t["refresh_token_expires_in"], 1);
    let rt = t["refresh_token"].as_str().expect("rt").to_owned();
    assert_eq!(refresh(&sim, &rt).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = refresh(&sim, &rt).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    // The toggle turns it off for new grants.
    let resp = sim.control("/_sim/youtube/settings", Some(json!({"testing_mode": false}))).await;
    assert_eq!(resp.json::<Value>().await.expect("json"), json!({"testing_mode": false}));
    let t = connect_with(&sim, "yt_user", Some("consent")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(refresh(&sim, t["refresh_token"].as_str().expect("rt")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn control_actions() {
    let sim = start(1.0).await;
    let t = connect_with(&sim, "yt_user", None).await;
    let at = t["access_token"].as_str().expect("at").to_owned();
    let rt = t["refresh_token"].as_str().expect("rt").to_owned();
    sim.control(
        "/_sim/youtube/accounts/yt_user/remove-scope",
        Some(json!({"scope": "https://www.googleapis.com/auth/youtube.readonly"})),
    )
    .await;
    assert_google_api(
        sim.get_bearer("/google/apis/youtube/v3/channels?part=id&mine=true", &at).await,
        StatusCode::FORBIDDEN,
        "insufficientPermissions",
    )
    .await;
    sim.control("/_sim/youtube/accounts/yt_user/expire", None).await;
    assert_google_api(
        upload(&sim, &at, "x", crate::MP4).await,
        StatusCode::UNAUTHORIZED,
        "authError",
    )
    .await;
    let (status, r) = refresh(&sim, &rt).await;
    assert_eq!(status, StatusCode::OK);
    let at2 = r["access_token"].as_str().expect("at").to_owned();
    sim.control("/_sim/youtube/accounts/yt_user/security-checkpoint", None).await;
    let (status, body) = refresh(&sim, &rt).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_subtype"], "invalid_rapt");
    let t = connect_with(&sim, "yt_user", Some("consent")).await;
    sim.control("/_sim/youtube/accounts/yt_user/password-change", None).await;
    assert_eq!(
        refresh(&sim, t["refresh_token"].as_str().expect("rt")).await.1["error"],
        "invalid_grant"
    );
    sim.control("/_sim/youtube/accounts/yt_user/revoke", None).await;
    assert_google_api(
        upload(&sim, &at2, "x", crate::MP4).await,
        StatusCode::UNAUTHORIZED,
        "authError",
    )
    .await;

    let t = connect_with(&sim, "yt_user", None).await;
    let at = t["access_token"].as_str().expect("at").to_owned();
    sim.control("/_sim/youtube/reject-content", Some(json!({"for_seconds": 30}))).await;
    assert_google_api(
        upload(&sim, &at, "x", crate::MP4).await,
        StatusCode::BAD_REQUEST,
        "invalidVideoMetadata",
    )
    .await;
    sim.control("/_sim/youtube/rate-limit", Some(json!({"for_seconds": 30}))).await;
    let body = assert_google_api(
        upload(&sim, &at, "x", crate::MP4).await,
        StatusCode::FORBIDDEN,
        "quotaExceeded",
    )
    .await;
    assert_eq!(body["error"]["errors"][0]["domain"], "youtube.quota");
}
