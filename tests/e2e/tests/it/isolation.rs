//! A workspace never sees another's accounts, posts or notifications: they answer 404, exactly as
//! if they did not exist. Requests without a valid token answer 401.

use lifeline_e2e::System;
use lifeline_kit::ids::WorkspaceId;
use serde_json::json;

use crate::{connected_account, post_reaches};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn other_workspaces_resources_are_not_found() -> anyhow::Result<()> {
    let system = System::start().await?;
    let (ws, account) = connected_account(&system, "erin").await?;
    system.sim_post("/_sim/x/accounts/erin/revoke", json!({})).await?;
    let post = system.schedule_post(ws, &account, "erin's post").await?;
    post_reaches(&system, ws, &post, "failed_auth").await?;
    let notification = lifeline_e2e::eventually(std::time::Duration::from_secs(10), || async {
        let (_, n) = system.get(&system.notifier, "/v1/notifications", ws).await?;
        n["notifications"][0]["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("none yet"))
    })
    .await?;

    let intruder = WorkspaceId::new();
    let missing = uuid::Uuid::now_v7();
    for (base, path) in [
        (&system.gateway, format!("/v1/accounts/{account}")),
        (&system.gateway, format!("/v1/accounts/{missing}")),
        (&system.gateway, "/v1/accounts/not-a-uuid".to_owned()),
        (&system.publisher, format!("/v1/posts/{post}")),
    ] {
        let (status, body) = system.get(base, &path, intruder).await?;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"], "not_found");
    }
    let (status, _) = system
        .post_json(
            &system.gateway,
            &format!("/v1/accounts/{account}/reconnect"),
            intruder,
            &json!({}),
        )
        .await?;
    assert_eq!(status, 404);
    let (status, _) = system
        .post_json(
            &system.notifier,
            &format!("/v1/notifications/{notification}/read"),
            intruder,
            &json!({}),
        )
        .await?;
    assert_eq!(status, 404);
    let (status, body) = system
        .post_json(
            &system.publisher,
            "/v1/posts",
            intruder,
            &json!({"account_id": account, "text": "hijack"}),
        )
        .await?;
    assert_eq!(status, 404, "{body}");
    let (_, list) = system.get(&system.notifier, "/v1/notifications", intruder).await?;
    assert_eq!(list["notifications"].as_array().map(Vec::len), Some(0));
    let (_, list) = system.get(&system.gateway, "/v1/accounts", intruder).await?;
    assert_eq!(list["accounts"].as_array().map(Vec::len), Some(0));

    // The platforms on offer are those with a configured client.
    let (code, platforms) = system.get(&system.gateway, "/v1/platforms", ws).await?;
    assert_eq!(code, 200, "{platforms}");
    assert!(
        platforms["platforms"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["id"] == "x" && p["name"] == "X")),
        "{platforms}"
    );
    let (_, a) = system.get(&system.gateway, &format!("/v1/accounts/{account}"), ws).await?;
    assert_eq!(a["platform_name"], "X");

    // The owner can mark its notification read.
    let (status, _) = system
        .post_json(
            &system.notifier,
            &format!("/v1/notifications/{notification}/read"),
            ws,
            &json!({}),
        )
        .await?;
    assert_eq!(status, 204);

    // No token, a malformed one, or one signed with another secret: 401.
    for base in [&system.gateway, &system.publisher, &system.notifier] {
        let r = system.http.get(format!("{base}/v1/accounts")).send().await?;
        assert!(r.status().as_u16() == 401 || r.status().as_u16() == 404, "{base}");
    }
    let r = system
        .http
        .get(format!("{}/v1/accounts", system.gateway))
        .bearer_auth("not.a.jwt")
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 401);
    let forged = lifeline_kit::auth::JwtKeys::new(
        &"some-other-secret-that-is-long-enough".to_owned().into(),
    )
    .mint("attacker", ws, std::time::Duration::from_secs(60));
    let r = system
        .http
        .get(format!("{}/v1/accounts", system.gateway))
        .bearer_auth(forged)
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 401);

    // Bad input to the posts API gets a clear 4xx.
    for body in [
        json!({"account_id": account, "text": ""}),
        json!({"account_id": account}),
        json!({"text": "no account"}),
    ] {
        let (status, resp) = system.post_json(&system.publisher, "/v1/posts", ws, &body).await?;
        assert!(status == 400 || status == 422, "{body} -> {status} {resp}");
        assert!(resp["message"].is_string(), "{resp}");
    }
    system.stop().await
}
