//! Tokens and roles: issuer, audience, lifetime and `nbf` are checked on every API, and the
//! operator endpoints need `role: operator` and span workspaces; members see only their own.

use std::time::Duration;

use anyhow::Context as _;
use lifeline_e2e::System;
use lifeline_kit::{
    auth::{Claims, JwtKeys, Role, AUDIENCE, ISSUER},
    ids::WorkspaceId,
};
use serde_json::Value;

use crate::{connected_account, post_reaches};

async fn connected_account_id(system: &System, ws: WorkspaceId) -> anyhow::Result<String> {
    let (_, body) = system.get(&system.gateway, "/v1/accounts", ws).await?;
    Ok(body["accounts"][0]["id"].as_str().context("an account")?.to_owned())
}

async fn get_with(system: &System, url: &str, token: &str) -> anyhow::Result<(u16, Value)> {
    let r = system.http.get(url).bearer_auth(token).send().await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_are_checked_and_operator_endpoints_need_the_role() -> anyhow::Result<()> {
    let system = System::start().await?;
    let keys = JwtKeys::new(&system.jwt_secret.clone().into());

    // Two workspaces with one dead letter each: X refuses a tweet that repeats one.
    let mut dead = Vec::new();
    for user in ["rita", "sam"] {
        let (ws, account) = connected_account(&system, user).await?;
        let first = system.schedule_post(ws, &account, "said once").await?;
        post_reaches(&system, ws, &first, "published").await?;
        let post = system.schedule_post(ws, &account, "said once").await?;
        post_reaches(&system, ws, &post, "dead_lettered").await?;
        dead.push((ws, post));
    }
    let url = format!("{}/v1/operator/dead-letters", system.publisher);

    // A post the platform could never accept is refused when it is scheduled, naming the rule.
    let (ws, account) = (dead[0].0, connected_account_id(&system, dead[0].0).await?);
    let (status, body) = system
        .post_json(
            &system.publisher,
            "/v1/posts",
            ws,
            &serde_json::json!({"account_id": account, "text": "x".repeat(400)}),
        )
        .await?;
    assert_eq!((status, body["error"].as_str()), (422, Some("post_invalid")), "{body}");
    assert_eq!(body["details"]["rule"], "text_too_long", "{body}");
    assert!(body["message"].as_str().unwrap_or_default().contains("280"), "{body}");

    // A member token: 403 on the operator endpoint, its own dead letter on the member one.
    let member = keys.mint("member", dead[0].0, Duration::from_secs(60));
    let (status, body) = get_with(&system, &url, &member).await?;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")), "{body}");
    let (_, own) =
        get_with(&system, &format!("{}/v1/dead-letters", system.publisher), &member).await?;
    assert_eq!(own["dead_letters"].as_array().map(Vec::len), Some(1), "{own}");

    // An operator sees both workspaces, can filter by one, and pages with the cursor.
    let operator =
        keys.mint_as("ops@example", WorkspaceId::new(), Role::Operator, Duration::from_secs(60));
    let (status, body) = get_with(&system, &url, &operator).await?;
    assert_eq!(status, 200, "{body}");
    let listed: Vec<&str> = body["dead_letters"]
        .as_array()
        .context("dead_letters")?
        .iter()
        .filter_map(|d| d["post_id"].as_str())
        .collect();
    assert_eq!(listed.len(), 2, "{body}");
    for (_, post) in &dead {
        assert!(listed.contains(&post.as_str()), "{post} in {body}");
    }
    let (_, one) = get_with(&system, &format!("{url}?workspace={}", dead[1].0), &operator).await?;
    assert_eq!(one["dead_letters"][0]["post_id"], dead[1].1.as_str(), "{one}");
    assert_eq!(one["dead_letters"].as_array().map(Vec::len), Some(1), "{one}");
    let (_, first) = get_with(&system, &format!("{url}?limit=1"), &operator).await?;
    let next = first["next"].as_str().context("a next cursor")?;
    let (_, second) = get_with(&system, &format!("{url}?limit=1&after={next}"), &operator).await?;
    assert_eq!(second["dead_letters"].as_array().map(Vec::len), Some(1), "{second}");
    assert!(second.get("next").is_none(), "the last page has no next: {second}");
    assert_ne!(first["dead_letters"][0]["post_id"], second["dead_letters"][0]["post_id"]);
    for bad in ["?limit=0", "?platform=myspace", "?after=nonsense", "?surprise=1"] {
        let (status, body) = get_with(&system, &format!("{url}{bad}"), &operator).await?;
        assert_eq!(status, 400, "{bad}: {body}");
    }

    // Refused tokens, each with its reason, on every service.
    let now = chrono::Utc::now().timestamp();
    let ws = dead[0].0;
    let claims = |iss: &str, aud: &str, iat: i64, exp: i64, nbf: Option<i64>| Claims {
        sub: "t".into(),
        ws,
        iss: iss.into(),
        aud: aud.into(),
        iat,
        exp,
        nbf,
        role: Role::Member,
    };
    let refused = [
        ("another issuer", claims("someone", AUDIENCE, now, now + 60, None), "issuer"),
        ("another audience", claims(ISSUER, "other-api", now, now + 60, None), "audience"),
        ("a week-long token", claims(ISSUER, AUDIENCE, now, now + 7 * 86_400, None), "longer than"),
        ("not valid yet", claims(ISSUER, AUDIENCE, now, now + 600, Some(now + 300)), "nbf"),
        ("expired", claims(ISSUER, AUDIENCE, now - 120, now - 60, None), "expired"),
    ];
    for (what, c, says) in refused {
        let token = keys.encode(&c);
        for base in [&system.gateway, &system.publisher, &system.notifier] {
            let path = if *base == system.gateway {
                "/v1/accounts"
            } else if *base == system.publisher {
                "/v1/posts"
            } else {
                "/v1/notifications"
            };
            let (status, body) = get_with(&system, &format!("{base}{path}"), &token).await?;
            assert_eq!(status, 401, "{what} on {base}{path}: {body}");
            let message = body["message"].as_str().unwrap_or_default();
            assert!(message.contains(says), "{what}: {message}");
        }
    }
    system.stop().await
}
