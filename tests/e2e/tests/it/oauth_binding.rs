//! OAuth bound to the browser and the workspace: the cross-workspace linking attack fails, a
//! state or confirmation used from another browser fails, a new identity is stored only after
//! its owner confirms, and a consent without a permission publishing needs stores nothing.

use std::time::Duration;

use anyhow::Context as _;
use lifeline_e2e::{eventually, new_browser, System};
use lifeline_kit::ids::WorkspaceId;
use serde_json::Value;

async fn accounts(system: &System, ws: WorkspaceId) -> anyhow::Result<Vec<Value>> {
    let (_, body) = system.get(&system.gateway, "/v1/accounts", ws).await?;
    Ok(body["accounts"].as_array().cloned().unwrap_or_default())
}

async fn credentials(system: &System) -> anyhow::Result<i64> {
    let db = system.db().await?;
    Ok(sqlx::query_scalar("SELECT count(*) FROM vault.credentials").fetch_one(&db).await?)
}

fn with_param(url: &str, key: &str, value: &str) -> anyhow::Result<String> {
    let mut u = url::Url::parse(url)?;
    u.query_pairs_mut().append_pair(key, value);
    Ok(u.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_authorize_url_sent_to_someone_else_links_nothing() -> anyhow::Result<()> {
    let system = System::start().await?;
    let attacker_ws = WorkspaceId::new();
    let attacker = new_browser();
    let victim = new_browser();

    // The attacker starts a connect in their own workspace and sends the URL to the victim,
    // who approves on the platform as themselves; the callback opens in the victim's browser.
    let authorize = system.start_authorization_in(&attacker, "x", attacker_ws, None).await?;
    let callback = system.approve(&authorize, "victim").await?;
    let (status, body) = system.callback_in(&victim, &callback).await?;
    assert_eq!((status, body["error"].as_str()), (403, Some("oauth_binding_mismatch")), "{body}");
    println!("victim's browser: {status} {body}");
    // The state is used up: the attacker cannot finish it from the browser that has the cookie.
    let (status, body) = system.callback_in(&attacker, &callback).await?;
    assert_eq!((status, body["error"].as_str()), (400, Some("state_already_used")), "{body}");
    assert!(accounts(&system, attacker_ws).await?.is_empty());
    assert_eq!(credentials(&system).await?, 0);

    // The same in a browser: the refusal is a page that says what happened.
    let authorize = system.start_authorization_in(&attacker, "x", attacker_ws, None).await?;
    let callback = system.approve(&authorize, "victim").await?;
    let r = victim.get(&callback).send().await?;
    assert_eq!(r.status().as_u16(), 403);
    let csp = r.headers().get("content-security-policy").cloned();
    let page = r.text().await?;
    assert!(page.contains("started in another browser"), "{page}");
    assert!(csp.is_some_and(|v| v.to_str().unwrap_or_default().contains("frame-ancestors 'none'")));

    // A reconnect started in one browser cannot be finished in another either.
    let ws = WorkspaceId::new();
    let owner = new_browser();
    let (status, body) = system.oauth_in(&owner, "x", ws, None, "carol").await?;
    assert_eq!((status, body["result"].as_str()), (200, Some("connected")), "{body}");
    let account = body["account_id"].as_str().context("account_id")?.to_owned();
    let authorize = system.start_authorization_in(&owner, "x", ws, Some(&account)).await?;
    let callback = system.approve(&authorize, "carol").await?;
    let (status, body) = system.callback_in(&new_browser(), &callback).await?;
    assert_eq!((status, body["error"].as_str()), (403, Some("oauth_binding_mismatch")), "{body}");
    // ...and in the browser that started it, a fresh flow works.
    let (status, body) = system.oauth_in(&owner, "x", ws, Some(&account), "carol").await?;
    assert_eq!((status, body["result"].as_str()), (200, Some("reconnected")), "{body}");
    system.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_identity_is_stored_only_after_its_owner_confirms() -> anyhow::Result<()> {
    let system = System::start().await?;
    let ws = WorkspaceId::new();
    let browser = new_browser();

    // Cancel: nothing is stored, and the confirmation cannot be used afterwards.
    let authorize = system.start_authorization_in(&browser, "x", ws, None).await?;
    let callback = system.approve(&authorize, "erin").await?;
    let (status, body) = system.callback_in(&browser, &callback).await?;
    assert_eq!((status, body["result"].as_str()), (200, Some("confirmation_required")), "{body}");
    assert_eq!(body["username"], "erin");
    assert_eq!(body["workspace_id"], ws.to_string());
    let token = body["confirmation"].as_str().context("confirmation")?.to_owned();
    let (status, body) = system.confirm_in(&browser, &token, "cancel").await?;
    assert_eq!((status, body["result"].as_str()), (200, Some("cancelled")), "{body}");
    let (status, body) = system.confirm_in(&browser, &token, "connect").await?;
    assert_eq!((status, body["error"].as_str()), (400, Some("already_decided")), "{body}");
    assert!(accounts(&system, ws).await?.is_empty());

    // A confirmation presented by another browser is refused and burnt.
    let authorize = system.start_authorization_in(&browser, "x", ws, None).await?;
    let callback = system.approve(&authorize, "erin").await?;
    let (_, body) = system.callback_in(&browser, &callback).await?;
    let token = body["confirmation"].as_str().context("confirmation")?.to_owned();
    let (status, body) = system.confirm_in(&new_browser(), &token, "connect").await?;
    assert_eq!((status, body["error"].as_str()), (403, Some("oauth_binding_mismatch")), "{body}");
    let (status, body) = system.confirm_in(&browser, &token, "connect").await?;
    assert_eq!((status, body["error"].as_str()), (400, Some("already_decided")), "{body}");
    // A made-up token and a malformed answer.
    let (status, body) = system.confirm_in(&browser, "made-up", "connect").await?;
    assert_eq!((status, body["error"].as_str()), (400, Some("unknown_confirmation")), "{body}");
    let (status, body) = system.confirm_in(&browser, &token, "maybe").await?;
    assert_eq!((status, body["error"].as_str()), (400, Some("malformed_decision")), "{body}");
    assert!(accounts(&system, ws).await?.is_empty());
    assert_eq!(credentials(&system).await?, 0);

    // As a browser does it: the callback shows the question; a form from another site is
    // refused; the form from the page itself connects and goes back to the Accounts page.
    let authorize = system.start_authorization_in(&browser, "x", ws, None).await?;
    let callback = system.approve(&authorize, "erin").await?;
    let page = browser.get(&callback).send().await?.text().await?;
    assert!(page.contains(&format!("Connect @erin (X) to workspace {ws}?")), "{page}");
    let token = page
        .split("name=\"confirmation\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("the page's confirmation field")?
        .to_owned();
    let form = [("confirmation", token.as_str()), ("decision", "connect")];
    let r = browser
        .post(format!("{}/oauth/confirm", system.gateway))
        .header("origin", "https://evil.example")
        .form(&form)
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 403);
    let r = browser
        .post(format!("{}/oauth/confirm", system.gateway))
        .header("origin", &system.gateway)
        .form(&form)
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 303);
    let location = r.headers().get("location").context("location")?.to_str()?.to_owned();
    let cleared = r.headers().get_all("set-cookie").iter().any(|c| {
        c.to_str().is_ok_and(|c| c.starts_with("lifeline_oauth_") && c.contains("Max-Age=0"))
    });
    assert!(cleared, "the finished flow's cookie is removed");
    let listed = accounts(&system, ws).await?;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let id = listed[0]["id"].as_str().context("id")?;
    assert_eq!(location, format!("/?connected={id}"));
    eventually(Duration::from_secs(10), || async {
        let n = system.event_names().iter().filter(|n| *n == "account_connected").count();
        if n == 1 {
            Ok(())
        } else {
            anyhow::bail!("{n} account_connected")
        }
    })
    .await?;
    // Connecting the same identity again renews it without asking: it is already there.
    let (status, body) = system.oauth_in(&browser, "x", ws, None, "erin").await?;
    assert_eq!((status, body["result"].as_str()), (200, Some("reconnected")), "{body}");
    system.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consent_without_a_needed_permission_stores_nothing_and_asks_again() -> anyhow::Result<()>
{
    let system = System::start().await?;
    let ws = WorkspaceId::new();
    let browser = new_browser();

    // Facebook: the user unticks pages_manage_posts on the consent screen.
    let authorize = system.start_authorization_in(&browser, "facebook", ws, None).await?;
    let partial =
        with_param(&authorize, "sim_grant_scopes", "pages_show_list,pages_read_engagement")?;
    let callback = system.approve(&partial, "frank").await?;
    let (status, body) = system.callback_in(&browser, &callback).await?;
    assert_eq!((status, body["error"].as_str()), (422, Some("permission_missing")), "{body}");
    println!("unticked pages_manage_posts: {body}");
    let missing = &body["details"]["missing"];
    assert_eq!(missing.as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(missing[0]["permission"], "pages_manage_posts");
    assert!(accounts(&system, ws).await?.is_empty());
    assert_eq!(credentials(&system).await?, 0);

    // Ask again: a new flow whose authorize URL makes Facebook show the declined permission.
    let token = body["details"]["confirmation"].as_str().context("confirmation")?;
    let r = browser
        .post(format!("{}/oauth/ask-again", system.gateway))
        .header("accept", "application/json")
        .json(&serde_json::json!({ "confirmation": token }))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 201);
    let again: Value = r.json().await?;
    let url = again["authorize_url"].as_str().context("authorize_url")?.to_owned();
    assert!(url.contains("auth_type=rerequest"), "{url}");
    // This time everything is granted: the identity is confirmed and stored.
    let callback = system.approve(&url, "frank").await?;
    let (status, body) = system.callback_in(&browser, &callback).await?;
    assert_eq!(body["result"], "confirmation_required", "{status} {body}");
    let token = body["confirmation"].as_str().context("confirmation")?;
    let (status, body) = system.confirm_in(&browser, token, "connect").await?;
    assert_eq!((status, body["result"].as_str()), (200, Some("connected")), "{body}");
    let account = body["account_id"].as_str().context("account_id")?.to_owned();

    // A reconnect that unticks it again leaves the account needing a reconnect, with the cause.
    let authorize = system.start_authorization_in(&browser, "facebook", ws, Some(&account)).await?;
    let partial = with_param(&authorize, "sim_grant_scopes", "pages_show_list")?;
    let callback = system.approve(&partial, "frank").await?;
    let (status, body) = system.callback_in(&browser, &callback).await?;
    assert_eq!((status, body["error"].as_str()), (422, Some("permission_missing")), "{body}");
    assert_eq!(body["details"]["account_needs_reconnect"], true);
    let view = eventually(Duration::from_secs(10), || async {
        let listed = accounts(&system, ws).await?;
        let a = listed.first().cloned().unwrap_or_default();
        if a["status"] == "needs_reconnect" {
            Ok(a)
        } else {
            anyhow::bail!("{a}")
        }
    })
    .await?;
    assert_eq!(view["cause"], "permission_removed", "{view}");
    let failed: Vec<lifeline_events::AuthFailed> = system.events_of();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].source, lifeline_events::AuthFailureSource::Consent as i32);
    assert!(failed[0].detail.contains("pages_manage_posts"), "{}", failed[0].detail);
    system.stop().await
}
