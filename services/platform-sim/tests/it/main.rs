//! Integration tests: start the simulator in-process on 127.0.0.1:0 and drive
//! it over real HTTP, as the Lifeline services do.

mod api;
mod control;
mod facebook;
mod faults;
mod instagram;
mod linkedin;
mod oauth;
mod threads;
mod tiktok;
mod youtube;

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use platform_sim::{ClientRegistration, SimConfig};
use reqwest::header::{AUTHORIZATION, LOCATION};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;

pub const CLIENT_ID: &str = "test-client";
pub const CLIENT_SECRET: &str = "test-secret";
pub const PUBLIC_CLIENT_ID: &str = "public-client";
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";
pub const SCOPES: &str = "tweet.read users.read tweet.write offline.access";

/// A running simulator; stops when dropped.
pub struct Sim {
    pub base: String,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn start(time_scale: f64) -> Sim {
    start_with(time_scale, false).await
}

/// The default client id and secret of a platform (`SimConfig::default`).
pub fn app(platform: &str) -> (String, String) {
    (format!("lifeline-{platform}-dev"), format!("sim-{platform}-secret"))
}

pub async fn start_with(time_scale: f64, google_testing_mode: bool) -> Sim {
    let others = SimConfig::default().clients.into_iter().filter(|c| c.platform != "x");
    let config = SimConfig {
        time_scale,
        google_testing_mode,
        clients: others
            .chain([
                ClientRegistration {
                    platform: "x".into(),
                    client_id: CLIENT_ID.into(),
                    client_secret: Some(CLIENT_SECRET.into()),
                },
                ClientRegistration {
                    platform: "x".into(),
                    client_id: PUBLIC_CLIENT_ID.into(),
                    client_secret: None,
                },
            ])
            .collect(),
        ..SimConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(platform_sim::run(listener, config, shutdown.clone()));
    let http = reqwest::Client::builder()
        // Redirects are what we assert on, never follow them.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    Sim { base, http, shutdown, task: Some(task) }
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

pub fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce() -> Pkce {
    let verifier = format!("verifier-{}", uuid::Uuid::new_v4().simple()).repeat(2);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Pkce { verifier, challenge }
}

/// Query parameters of a redirect's `Location`.
pub fn location_params(resp: &reqwest::Response) -> Vec<(String, String)> {
    let loc = resp.headers().get(LOCATION).expect("a Location header").to_str().expect("ascii");
    url::Url::parse(loc).expect("absolute URL").query_pairs().into_owned().collect()
}

pub fn param(params: &[(String, String)], name: &str) -> Option<String> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// The JSON a token grant answers with.
pub struct Tokens {
    pub access: String,
    pub refresh: Option<String>,
    pub body: Value,
}

impl Sim {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn authorize_url(&self, pairs: &[(&str, &str)]) -> String {
        format!("{}/x/i/oauth2/authorize?{}", self.base, form(pairs))
    }

    /// Authorize as `username` without a browser; returns the code.
    pub async fn code_for(&self, username: &str, scopes: &str, pkce: &Pkce) -> String {
        let resp = self
            .http
            .get(self.authorize_url(&[
                ("response_type", "code"),
                ("client_id", CLIENT_ID),
                ("redirect_uri", REDIRECT_URI),
                ("scope", scopes),
                ("state", "st-1"),
                ("code_challenge", &pkce.challenge),
                ("code_challenge_method", "S256"),
                ("sim_approve_as", username),
            ]))
            .send()
            .await
            .expect("authorize");
        assert_eq!(resp.status(), StatusCode::FOUND);
        let params = location_params(&resp);
        assert_eq!(param(&params, "state").as_deref(), Some("st-1"));
        param(&params, "code").expect("code")
    }

    pub async fn token_request(
        &self,
        auth: Option<String>,
        pairs: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.url("/x/2/oauth2/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(pairs));
        if let Some(auth) = auth {
            req = req.header(AUTHORIZATION, auth);
        }
        req.send().await.expect("token request")
    }

    pub async fn exchange(&self, code: &str, verifier: &str) -> reqwest::Response {
        self.token_request(
            Some(basic(CLIENT_ID, CLIENT_SECRET)),
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", verifier),
            ],
        )
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> reqwest::Response {
        self.token_request(
            Some(basic(CLIENT_ID, CLIENT_SECRET)),
            &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)],
        )
        .await
    }

    /// Full connect: authorize as `username` and exchange the code.
    pub async fn connect(&self, username: &str, scopes: &str) -> Tokens {
        let p = pkce();
        let code = self.code_for(username, scopes, &p).await;
        tokens_of(self.exchange(&code, &p.verifier).await).await
    }

    pub async fn me(&self, access: &str) -> reqwest::Response {
        self.http.get(self.url("/x/2/users/me")).bearer_auth(access).send().await.expect("users/me")
    }

    pub async fn tweet(&self, access: &str, body: &str) -> reqwest::Response {
        self.http
            .post(self.url("/x/2/tweets"))
            .bearer_auth(access)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("tweet")
    }

    pub async fn control(&self, path: &str, body: Option<Value>) -> reqwest::Response {
        let mut req = self.http.post(self.url(path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.expect("control")
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let resp = self.http.get(self.url(path)).send().await.expect("get");
        assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
        resp.json().await.expect("json")
    }

    /// GET an authorize URL with `sim_approve_as`; asserts the 302 and
    /// returns the redirect's query parameters.
    pub async fn approve(&self, path: &str, pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let resp = self
            .http
            .get(format!("{}{path}?{}", self.base, form(pairs)))
            .send()
            .await
            .expect("authorize");
        assert_eq!(resp.status(), StatusCode::FOUND, "authorize {path}");
        location_params(&resp)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("get")
    }

    pub async fn get_bearer(&self, path: &str, token: &str) -> reqwest::Response {
        self.http.get(self.url(path)).bearer_auth(token).send().await.expect("get")
    }

    pub async fn post_form(&self, path: &str, pairs: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(pairs))
            .send()
            .await
            .expect("post")
    }

    pub async fn post_json(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.http.post(self.url(path)).bearer_auth(token).json(body).send().await.expect("post")
    }

    /// Cancels the shutdown token and waits for `run` to return.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let task = self.task.take().expect("running");
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stops promptly")
            .expect("task did not panic")
    }
}

/// Status and JSON body of a response.
pub async fn status_json(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Asserts a Graph error with `code` and optional `subcode`; returns the body.
pub async fn assert_graph_error(resp: reqwest::Response, code: u64, subcode: Option<u64>) -> Value {
    let (status, body) = status_json(resp).await;
    assert!(status.is_client_error() || status.is_server_error(), "{status} {body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["error_subcode"].as_u64(), subcode, "{body}");
    assert!(body["error"]["fbtrace_id"].is_string(), "{body}");
    assert!(body["error"]["type"].is_string(), "{body}");
    body
}

/// Asserts a successful token response and extracts the tokens.
pub async fn tokens_of(resp: reqwest::Response) -> Tokens {
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    let body: Value = resp.json().await.expect("json");
    Tokens {
        access: body["access_token"].as_str().expect("access_token").to_owned(),
        refresh: body["refresh_token"].as_str().map(str::to_owned),
        body,
    }
}

/// Asserts X's answer for a bad, spent, expired or revoked grant.
pub async fn assert_invalid_token_value(resp: reqwest::Response) {
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(
        body,
        serde_json::json!({
            "error": "invalid_request",
            "error_description": "Value passed for the token was invalid."
        })
    );
}

/// Asserts X's API 401.
pub async fn assert_unauthorized(resp: reqwest::Response) {
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let body: Value = resp.json().await.expect("json");
    assert_eq!(
        body,
        serde_json::json!({"title":"Unauthorized","type":"about:blank","status":401,"detail":"Unauthorized"})
    );
}

#[tokio::test]
async fn healthz_and_graceful_shutdown() {
    let sim = start(1.0).await;
    let resp = sim.http.get(sim.url("/healthz")).send().await.expect("healthz");
    assert_eq!(resp.status(), StatusCode::OK);
    sim.stop().await.expect("run returns Ok after cancel");
}

/// A few hundred bytes standing in for a video.
pub const MP4: &[u8] = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2 sim video bytes";
