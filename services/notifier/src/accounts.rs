//! Account handles from the gateway (`GET /v1/accounts/{id}`), so a message can say "@acme on
//! LinkedIn". Asked once per notification with a short-lived workspace token; a gateway that
//! does not answer costs the message its handle, never the message.

use std::time::Duration;

use lifeline_kit::{auth::JwtKeys, ids::WorkspaceId};
use uuid::Uuid;

#[derive(Clone)]
pub(crate) struct AccountNames {
    pub http: reqwest::Client,
    /// `LIFELINE_GATEWAY_URL`; none: messages name the platform only.
    pub gateway: Option<url::Url>,
    pub jwt: JwtKeys,
}

impl AccountNames {
    /// The account's `@handle`, if the gateway knows one and answers within 2 s.
    pub async fn handle(&self, workspace: WorkspaceId, account: Uuid) -> Option<String> {
        let base = self.gateway.as_ref()?;
        let url = base.join(&format!("v1/accounts/{account}")).ok()?;
        let token = self.jwt.mint("notifier", workspace, Duration::from_secs(60));
        let answer = self
            .http
            .get(url)
            .bearer_auth(token)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        match answer {
            Ok(r) => {
                let body: serde_json::Value = r.json().await.ok()?;
                body["handle"].as_str().map(str::to_owned)
            }
            Err(e) => {
                tracing::debug!(account = %account, error = %e.without_url(), "no handle from the gateway");
                None
            }
        }
    }
}
