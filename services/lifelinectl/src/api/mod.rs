//! The HTTP API commands: accounts (auth-gateway), posts (publisher) and
//! notifications (notifier). Each prints a table, or with `--json` the service's answer as is.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use lifeline_kit::{
    config::Env,
    ids::{AccountId, PostId},
};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{de::DeserializeOwned, Deserialize};
use serde_json::{json, Value};
use url::Url;

use crate::{
    cli::{
        AccountsCommand, GlobalArgs, ListArgs, NotificationsCommand, PageLinkArgs, PostEditArgs,
        PostsCommand, PostsListArgs,
    },
    output::{self, cell, Table},
    token, CtlError,
};

/// Long enough for a bulk replay of many dead letters (`dead_letters.rs`), short enough that a hung service does not
/// hang a script.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Free text (post bodies, error messages) is cut to this many characters in tables.
const TEXT_WIDTH: usize = 48;

/// One service the CLI talks to: its name and flag for messages, and its base URL.
#[derive(Debug, Clone)]
pub struct Service {
    pub name: &'static str,
    pub base: Url,
    /// Where the operator changes the URL, quoted when the service cannot be reached.
    pub hint: &'static str,
}

impl Service {
    pub fn gateway(global: &GlobalArgs) -> Self {
        Service {
            name: "auth-gateway",
            base: global.gateway_url.clone(),
            hint: "--gateway-url or LIFELINE_GATEWAY_URL",
        }
    }
    pub fn publisher(global: &GlobalArgs) -> Self {
        Service {
            name: "publisher",
            base: global.publisher_url.clone(),
            hint: "--publisher-url or LIFELINE_PUBLISHER_URL",
        }
    }
    pub fn notifier(global: &GlobalArgs) -> Self {
        Service {
            name: "notifier",
            base: global.notifier_url.clone(),
            hint: "--notifier-url or LIFELINE_NOTIFIER_URL",
        }
    }

    /// `path` is relative (`v1/posts`), so a base URL with a path prefix keeps it.
    pub fn url(&self, path: &str, query: &[(&str, String)]) -> Result<Url, CtlError> {
        let mut url = self.base.join(path).map_err(|e| CtlError::BadResponse {
            service: self.name,
            url: self.base.to_string(),
            reason: format!("cannot build the URL for {path}: {e}"),
        })?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        Ok(url)
    }
}

/// The error document every Lifeline service answers with.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: String,
    message: String,
}

/// Turns a non-2xx answer into [`CtlError::Api`]; a body that is not the error document (a proxy's
/// HTML page) still yields a readable message.
pub fn api_error(service: &'static str, status: StatusCode, body: &str) -> CtlError {
    let (code, message) = match serde_json::from_str::<ErrorBody>(body) {
        Ok(e) => (e.error, e.message),
        Err(_) => {
            let text = cell(body, 200);
            let message = if text.is_empty() {
                status.canonical_reason().unwrap_or("request failed").to_owned()
            } else {
                text
            };
            (String::new(), message)
        }
    };
    CtlError::Api { service, status: status.as_u16(), code, message }
}

/// An authenticated HTTP client for the API commands.
pub struct ApiClient {
    http: reqwest::Client,
    bearer: SecretString,
}

impl ApiClient {
    pub fn new(global: &GlobalArgs, env: &Env) -> Result<Self, CtlError> {
        let bearer = token::api_bearer(global, env)?;
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("lifelinectl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CtlError::Usage(format!("cannot set up the HTTP client: {e}")))?;
        Ok(ApiClient { http, bearer })
    }

    /// Sends one request and returns the body of a 2xx answer.
    pub async fn send(
        &self,
        service: &Service,
        method: Method,
        url: Url,
        body: Option<Value>,
    ) -> Result<String, CtlError> {
        let mut request =
            self.http.request(method, url.clone()).bearer_auth(self.bearer.expose_secret());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let transport = |e: reqwest::Error| {
            let reason = if e.is_timeout() {
                format!("no answer within {}s", REQUEST_TIMEOUT.as_secs())
            } else {
                // reqwest's top-level message is generic; the cause says "connection refused".
                std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
                    e.source()
                })
                .last()
                .map_or_else(|| e.to_string(), ToString::to_string)
            };
            CtlError::Unreachable {
                service: service.name,
                url: service.base.to_string(),
                reason,
                hint: service.hint,
            }
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let text = response.text().await.map_err(transport)?;
        if status.is_success() {
            Ok(text)
        } else {
            Err(api_error(service.name, status, &text))
        }
    }

    pub(crate) async fn get(
        &self,
        service: &Service,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<String, CtlError> {
        self.send(service, Method::GET, service.url(path, query)?, None).await
    }
}

pub(crate) fn parse<T: DeserializeOwned>(
    service: &Service,
    path: &str,
    body: &str,
) -> Result<T, CtlError> {
    serde_json::from_str(body).map_err(|e| CtlError::BadResponse {
        service: service.name,
        url: format!("{}{path}", service.base),
        reason: e.to_string(),
    })
}

pub(crate) fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)).unwrap_or_default()
}

/// Prints the raw answer for `--json`, or the table built from it.
fn print(
    json: bool,
    raw: &str,
    table: impl FnOnce() -> Result<Table, CtlError>,
) -> Result<(), CtlError> {
    if json {
        output::line(raw.trim_end())
    } else {
        output::line(&table()?.render())
    }
}

// The list types read only what the tables show and tolerate missing fields: the CLI must keep
// working against a service that has added or made optional a column. Ids are typed (they are a
// stable contract); platform and status stay text so a newer service's values still display.

#[derive(Debug, Deserialize)]
struct AccountList {
    accounts: Vec<AccountRow>,
}

#[derive(Debug, Deserialize)]
struct AccountRow {
    id: AccountId,
    #[serde(default)]
    platform: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    status: String,
    #[serde(default)]
    cause: Option<String>,
}

fn accounts_table(body: &AccountList) -> Table {
    let mut t = Table::new(&["ID", "PLATFORM", "USERNAME", "STATUS", "CAUSE"]);
    for a in &body.accounts {
        t.row(vec![
            a.id.to_string(),
            a.platform.clone(),
            a.username.clone().unwrap_or_default(),
            a.status.clone(),
            a.cause.clone().unwrap_or_default(),
        ]);
    }
    t
}

/// `accounts list`.
pub async fn accounts(
    global: &GlobalArgs,
    env: &Env,
    cmd: &AccountsCommand,
) -> Result<(), CtlError> {
    let AccountsCommand::List(ListArgs { json }) = cmd else {
        return Err(CtlError::Usage("not an accounts API command".into()));
    };
    let client = ApiClient::new(global, env)?;
    let service = Service::gateway(global);
    let raw = client.get(&service, "v1/accounts", &[]).await?;
    print(*json, &raw, || Ok(accounts_table(&parse(&service, "v1/accounts", &raw)?)))
}

#[derive(Debug, Deserialize)]
struct PostList {
    posts: Vec<PostRow>,
    /// The cursor of the next page; absent on the last.
    #[serde(default)]
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PostRow {
    id: PostId,
    account_id: AccountId,
    #[serde(default)]
    platform: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    attempts: i64,
    #[serde(default)]
    scheduled_at: Option<DateTime<Utc>>,
    #[serde(default)]
    platform_post_id: Option<String>,
    #[serde(default)]
    last_error: Option<String>,
}

fn posts_table(body: &PostList) -> Table {
    let mut t = Table::new(&[
        "ID",
        "ACCOUNT",
        "PLATFORM",
        "STATUS",
        "ATTEMPTS",
        "SCHEDULED_AT",
        "PLATFORM_POST_ID",
        "BODY",
        "LAST_ERROR",
    ]);
    for p in &body.posts {
        t.row(vec![
            p.id.to_string(),
            p.account_id.to_string(),
            p.platform.clone(),
            p.status.clone(),
            p.attempts.to_string(),
            time(p.scheduled_at),
            p.platform_post_id.clone().unwrap_or_default(),
            cell(&p.body, TEXT_WIDTH),
            cell(p.last_error.as_deref().unwrap_or_default(), TEXT_WIDTH),
        ]);
    }
    t
}

/// The query of `posts list`: only the filters given.
pub fn posts_query(args: &PostsListArgs) -> Vec<(&'static str, String)> {
    let mut query = vec![("limit", args.limit.to_string())];
    if let Some(account) = args.account {
        query.push(("account_id", account.to_string()));
    }
    if let Some(status) = &args.status {
        query.push(("status", status.clone()));
    }
    if let Some(platform) = args.platform {
        query.push(("platform", platform.as_str().to_owned()));
    }
    if let Some(from) = args.from {
        query.push(("scheduled_from", from.to_rfc3339_opts(SecondsFormat::AutoSi, true)));
    }
    if let Some(to) = args.to {
        query.push(("scheduled_to", to.to_rfc3339_opts(SecondsFormat::AutoSi, true)));
    }
    query
}

/// The body of `posts edit`: only what is to change (`media: null` removes the media).
pub fn edit_body(args: &PostEditArgs) -> Value {
    let mut body = serde_json::Map::new();
    if let Some(text) = &args.text {
        body.insert("text".into(), json!(text));
    }
    if let Some(at) = args.at {
        body.insert("scheduled_at".into(), json!(at.to_rfc3339_opts(SecondsFormat::AutoSi, true)));
    }
    if let (Some(url), Some(kind)) = (&args.media_url, &args.media_kind) {
        body.insert("media".into(), json!({ "url": url, "kind": kind }));
    } else if args.no_media {
        body.insert("media".into(), Value::Null);
    }
    Value::Object(body)
}

/// One post's line after a change: `<id> <status> <scheduled_at>`.
fn post_line(service: &Service, path: &str, raw: &str) -> Result<String, CtlError> {
    let p: PostRow = parse(service, path, raw)?;
    Ok(format!("post {} is {}, scheduled at {}", p.id, p.status, time(p.scheduled_at)))
}

/// `posts list`, `posts edit` and `posts cancel`.
pub async fn posts(global: &GlobalArgs, env: &Env, cmd: &PostsCommand) -> Result<(), CtlError> {
    let client = ApiClient::new(global, env)?;
    let service = Service::publisher(global);
    match cmd {
        PostsCommand::List(args) => {
            let mut query = posts_query(args);
            let raw = client.get(&service, "v1/posts", &query).await?;
            if !args.all {
                return print(args.list.json, &raw, || {
                    Ok(posts_table(&parse(&service, "v1/posts", &raw)?))
                });
            }
            // Every page: the rows for the table, the raw objects for --json.
            let mut rows = Vec::new();
            let mut objects = Vec::new();
            let mut raw = raw;
            loop {
                let page: PostList = parse(&service, "v1/posts", &raw)?;
                let value: Value = parse(&service, "v1/posts", &raw)?;
                if let Some(list) = value.get("posts").and_then(Value::as_array) {
                    objects.extend(list.iter().cloned());
                }
                rows.extend(page.posts);
                let Some(next) = page.next else { break };
                query.retain(|(k, _)| *k != "after");
                query.push(("after", next));
                raw = client.get(&service, "v1/posts", &query).await?;
            }
            if args.list.json {
                output::line(&json!({ "posts": objects }).to_string())
            } else {
                output::line(&posts_table(&PostList { posts: rows, next: None }).render())
            }
        }
        PostsCommand::Edit(args) => {
            let path = format!("v1/posts/{}", args.post);
            let url = service.url(&path, &[])?;
            let raw = client.send(&service, Method::PATCH, url, Some(edit_body(args))).await?;
            if args.json {
                return output::line(raw.trim_end());
            }
            output::line(&post_line(&service, &path, &raw)?)
        }
        PostsCommand::Cancel(args) => {
            let path = format!("v1/posts/{}/cancel", args.post);
            let url = service.url(&path, &[])?;
            let raw = client.send(&service, Method::POST, url, None).await?;
            if args.json {
                return output::line(raw.trim_end());
            }
            output::line(&post_line(&service, &path, &raw)?)
        }
    }
}

#[derive(Debug, Deserialize)]
struct LinkMinted {
    url: String,
    expires_at: DateTime<Utc>,
}

/// `page-link`.
pub async fn page_link(
    global: &GlobalArgs,
    env: &Env,
    args: &PageLinkArgs,
) -> Result<(), CtlError> {
    let client = ApiClient::new(global, env)?;
    let service = Service::gateway(global);
    let body = args.account.map(|a| json!({ "account_id": a.to_string() }));
    let url = service.url("v1/page-links", &[])?;
    let raw = client.send(&service, Method::POST, url, body).await?;
    if args.json {
        return output::line(raw.trim_end());
    }
    let link: LinkMinted = parse(&service, "v1/page-links", &raw)?;
    output::line(&format!(
        "{}\n(signs one browser in; valid until {})",
        link.url,
        time(Some(link.expires_at))
    ))
}

#[derive(Debug, Deserialize)]
struct NotificationList {
    notifications: Vec<NotificationRow>,
}

#[derive(Debug, Deserialize)]
struct NotificationRow {
    id: uuid::Uuid,
    #[serde(default)]
    account_id: Option<AccountId>,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    read_at: Option<DateTime<Utc>>,
}

fn notifications_table(body: &NotificationList) -> Table {
    let mut t = Table::new(&["ID", "ACCOUNT", "KIND", "CREATED_AT", "READ_AT", "TITLE"]);
    for n in &body.notifications {
        t.row(vec![
            n.id.to_string(),
            n.account_id.map(|a| a.to_string()).unwrap_or_default(),
            n.kind.clone(),
            time(n.created_at),
            time(n.read_at),
            cell(&n.title, TEXT_WIDTH * 2),
        ]);
    }
    t
}

/// `notifications list`.
pub async fn notifications(
    global: &GlobalArgs,
    env: &Env,
    cmd: &NotificationsCommand,
) -> Result<(), CtlError> {
    let NotificationsCommand::List(ListArgs { json }) = cmd;
    let client = ApiClient::new(global, env)?;
    let service = Service::notifier(global);
    let raw = client.get(&service, "v1/notifications", &[]).await?;
    print(*json, &raw, || Ok(notifications_table(&parse(&service, "v1/notifications", &raw)?)))
}

#[cfg(test)]
mod tests;
