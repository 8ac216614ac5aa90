//! What other services know about an account: its handle from the gateway
//! (`GET /v1/accounts/{id}`), so a message can say "@acme on LinkedIn", and how many of its posts
//! wait from the publisher (`GET /v1/posts`), and a sign-in link to the Accounts page for the
//! messages people read (`POST /v1/page-links`). Asked once per message with a short-lived workspace
//! token; a service that does not answer costs the message that detail, never the message.

use std::time::Duration;

use lifeline_kit::{auth::JwtKeys, ids::WorkspaceId};
use uuid::Uuid;

#[derive(Clone)]
pub(crate) struct AccountNames {
    pub http: reqwest::Client,
    /// `LIFELINE_GATEWAY_URL`; none: messages name the platform only.
    pub gateway: Option<url::Url>,
    /// `LIFELINE_PUBLISHER_URL`; none: messages do not count the waiting posts, and no reminder
    /// is sent (it is only for accounts with posts waiting).
    pub publisher: Option<url::Url>,
    pub jwt: JwtKeys,
}

/// The publisher's statuses of a post that has not gone out and still will: due later, parked
/// until the account is reconnected, or about to be retried.
const WAITING: &str = "scheduled,failed_auth,retry_requested";
/// One page of the publisher's list (whole posts, texts included: kept small); more are
/// counted as "this many or more".
pub(crate) const WAITING_COUNTED: u32 = 100;

/// What the other services said about an account, for one message.
#[derive(Clone, Debug, Default)]
pub(crate) struct Known {
    pub handle: Option<String>,
    pub posts_waiting: Option<u32>,
}

impl AccountNames {
    /// The handle and the waiting-post count, asked together.
    pub async fn about(&self, workspace: WorkspaceId, account: Uuid) -> Known {
        let (handle, posts_waiting) =
            tokio::join!(self.handle(workspace, account), self.waiting_posts(workspace, account));
        Known { handle, posts_waiting }
    }

    /// How many of the account's posts wait (up to [`WAITING_COUNTED`]), if the publisher
    /// answers within 2 s.
    pub async fn waiting_posts(&self, workspace: WorkspaceId, account: Uuid) -> Option<u32> {
        let mut url = self.publisher.as_ref()?.join("v1/posts").ok()?;
        url.query_pairs_mut()
            .append_pair("account_id", &account.to_string())
            .append_pair("status", WAITING)
            .append_pair("limit", &WAITING_COUNTED.to_string());
        let body = self.call(self.http.get(url), workspace, account, "the publisher").await?;
        let n = body["posts"].as_array()?.len();
        Some(u32::try_from(n).unwrap_or(WAITING_COUNTED))
    }

    /// The account's `@handle`, if the gateway knows one and answers within 2 s.
    pub async fn handle(&self, workspace: WorkspaceId, account: Uuid) -> Option<String> {
        let url = self.gateway.as_ref()?.join(&format!("v1/accounts/{account}")).ok()?;
        let body = self.call(self.http.get(url), workspace, account, "the gateway").await?;
        body["handle"].as_str().map(str::to_owned)
    }

    /// A single-use link that signs a person in to the Accounts page at the account and works
    /// for `ttl` (the gateway's `POST /v1/page-links`), if the gateway answers within 2 s.
    pub async fn sign_in_link(
        &self,
        workspace: WorkspaceId,
        account: Uuid,
        ttl: Duration,
    ) -> Option<String> {
        let url = self.gateway.as_ref()?.join("v1/page-links").ok()?;
        let request = self
            .http
            .post(url)
            .json(&serde_json::json!({"account_id": account, "ttl_seconds": ttl.as_secs()}));
        let body = self.call(request, workspace, account, "the gateway").await?;
        body["url"].as_str().map(str::to_owned)
    }

    /// Sends `request` as the workspace (a one-minute token), within 2 s; a failure is logged
    /// at debug (the detail is optional) and answers `None`.
    async fn call(
        &self,
        request: reqwest::RequestBuilder,
        workspace: WorkspaceId,
        account: Uuid,
        service: &str,
    ) -> Option<serde_json::Value> {
        let token = self.jwt.mint("notifier", workspace, Duration::from_secs(60));
        let answer = request
            .bearer_auth(token)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        match answer {
            Ok(r) => r.json().await.ok(),
            Err(e) => {
                tracing::debug!(account = %account, error = %e.without_url(), "no answer from {service}");
                None
            }
        }
    }
}
