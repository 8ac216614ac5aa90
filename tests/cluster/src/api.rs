//! The public surfaces the test drives: the gateway's OAuth flow with the simulator's scripted
//! consent, the publisher's posts API, the gateway's accounts API, the notifier's
//! notifications API and the simulator's control API.

use anyhow::{bail, Context as _};
use lifeline_kit::ids::WorkspaceId;
use serde_json::{json, Value};

use crate::cluster::Cluster;

/// A connected account the test owns.
#[derive(Clone, Debug)]
pub struct Account {
    pub platform: String,
    pub username: String,
    pub workspace: WorkspaceId,
    pub id: String,
}

impl Cluster {
    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
        let r = req.send().await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    pub async fn get_as(&self, url: &str, ws: WorkspaceId) -> anyhow::Result<(u16, Value)> {
        self.send(self.http.get(url).bearer_auth(self.token(ws))).await
    }

    pub async fn post_as(
        &self,
        url: &str,
        ws: WorkspaceId,
        body: &Value,
    ) -> anyhow::Result<(u16, Value)> {
        self.send(self.http.post(url).bearer_auth(self.token(ws)).json(body)).await
    }

    /// Connects (or, with `account`, reconnects) through OAuth: the authorization starts on
    /// gateway replica `start_on`, the simulator approves as `username`, and the callback is
    /// answered by replica `callback_on` (sessions live in Postgres, so any replica can); a new
    /// identity is then confirmed there. One cookie jar plays the browser that binds the flow.
    pub async fn oauth(
        &self,
        platform: &str,
        ws: WorkspaceId,
        account: Option<&str>,
        username: &str,
        start_on: usize,
        callback_on: usize,
    ) -> anyhow::Result<(u16, Value)> {
        let gateways = self.urls_of("auth-gateway");
        let start = &gateways[start_on % gateways.len()];
        let (status, body) = match account {
            Some(id) => {
                self.post_as(&format!("{start}/v1/accounts/{id}/reconnect"), ws, &json!({})).await?
            }
            None => {
                self.post_as(
                    &format!("{start}/v1/accounts/connect"),
                    ws,
                    &json!({"platform": platform}),
                )
                .await?
            }
        };
        if !(200..300).contains(&status) {
            bail!("starting authorization on {start} failed: {status} {body}");
        }
        let mut authorize =
            url::Url::parse(body["authorize_url"].as_str().context("authorize_url")?)?;
        authorize.query_pairs_mut().append_pair("sim_approve_as", username);
        let r = self.http.get(authorize).send().await?;
        if r.status().as_u16() != 302 {
            bail!(
                "simulator did not redirect: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        let location = r.headers().get("location").context("location")?.to_str()?.to_owned();
        let mut callback = url::Url::parse(&location)?;
        let target = url::Url::parse(&gateways[callback_on % gateways.len()])?;
        callback.set_port(target.port()).map_err(|_| anyhow::anyhow!("callback port"))?;
        let (status, body) =
            self.send(self.http.get(callback).header("accept", "application/json")).await?;
        if status != 200 || body["result"] != "confirmation_required" {
            return Ok((status, body));
        }
        // A new identity: confirm it on the same replica, as the user would on its page.
        let confirm = format!("{}/oauth/confirm", gateways[callback_on % gateways.len()]);
        let answer = json!({"confirmation": body["confirmation"], "decision": "connect"});
        self.send(self.http.post(confirm).header("accept", "application/json").json(&answer)).await
    }

    pub async fn sim_post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let r = self.http.post(format!("{}{path}", self.sim_url)).json(&body).send().await?;
        if !r.status().is_success() {
            bail!("sim {path}: {} {}", r.status(), r.text().await.unwrap_or_default());
        }
        Ok(r.json().await?)
    }

    pub async fn sim_get(&self, path: &str) -> anyhow::Result<Value> {
        let r = self.http.get(format!("{}{path}", self.sim_url)).send().await?;
        if !r.status().is_success() {
            bail!("sim {path}: {}", r.status());
        }
        Ok(r.json().await?)
    }

    /// Posts the simulator accepted on `platforms`, summed from `/_sim/stats`.
    pub async fn sim_posts_total(&self, platforms: &[&str]) -> anyhow::Result<u64> {
        let stats = self.sim_get("/_sim/stats").await?;
        Ok(platforms.iter().map(|p| stats[*p]["posts"].as_u64().unwrap_or(0)).sum())
    }

    /// The media a platform needs with every post, if any.
    pub fn media_for(&self, platform: &str) -> Option<Value> {
        match platform {
            "instagram" => Some(
                json!({"url": format!("{}/_sim/media/sample.jpg", self.sim_url), "kind": "image"}),
            ),
            "youtube" | "tiktok" => Some(
                json!({"url": format!("{}/_sim/media/sample.mp4", self.sim_url), "kind": "video"}),
            ),
            _ => None,
        }
    }

    /// Schedules a post due now on publisher replica `replica`; returns its id.
    pub async fn schedule(
        &self,
        account: &Account,
        text: &str,
        replica: usize,
    ) -> anyhow::Result<String> {
        let publishers = self.urls_of("publisher");
        let base = &publishers[replica % publishers.len()];
        let mut body = json!({"account_id": account.id, "text": text});
        if let Some(m) = self.media_for(&account.platform) {
            body["media"] = m;
        }
        let (status, resp) =
            self.post_as(&format!("{base}/v1/posts"), account.workspace, &body).await?;
        if status != 201 {
            bail!("scheduling on {} failed: {status} {resp}", account.platform);
        }
        Ok(resp["id"].as_str().context("post id")?.to_owned())
    }

    /// The posts of a workspace with a status (at most 1000), from any live publisher replica.
    pub async fn posts_with_status(
        &self,
        ws: WorkspaceId,
        status: &str,
    ) -> anyhow::Result<Vec<Value>> {
        let mut last = None;
        for base in self.urls_of("publisher") {
            match self.get_as(&format!("{base}/v1/posts?status={status}&limit=1000"), ws).await {
                Ok((200, body)) => {
                    return Ok(body["posts"].as_array().cloned().unwrap_or_default())
                }
                Ok((code, body)) => last = Some(anyhow::anyhow!("{base}: {code} {body}")),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no publisher")))
    }

    /// An account as the gateway shows it, from any live replica.
    pub async fn account(&self, account: &Account) -> anyhow::Result<Value> {
        let mut last = None;
        for base in self.urls_of("auth-gateway") {
            match self
                .get_as(&format!("{base}/v1/accounts/{}", account.id), account.workspace)
                .await
            {
                Ok((200, body)) => return Ok(body),
                Ok((code, body)) => last = Some(anyhow::anyhow!("{base}: {code} {body}")),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no gateway")))
    }

    /// The notifications of a workspace, from any live notifier replica.
    pub async fn notifications(&self, ws: WorkspaceId) -> anyhow::Result<Vec<Value>> {
        let mut last = None;
        for base in self.urls_of("notifier") {
            match self.get_as(&format!("{base}/v1/notifications"), ws).await {
                Ok((200, body)) => {
                    return Ok(body["notifications"].as_array().cloned().unwrap_or_default())
                }
                Ok((code, body)) => last = Some(anyhow::anyhow!("{base}: {code} {body}")),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no notifier")))
    }
}
