//! Which dead letters an operator means: the filter shared by the dead-letter list, the replay
//! dry run and the replay itself, parsed and checked at the edge, and the rule of who may reach
//! which workspace (members their own, operators any).

use chrono::{DateTime, Utc};
use lifeline_kit::{
    auth::Role,
    http::ApiError,
    ids::{AccountId, PostId, WorkspaceId},
    Platform,
};
use serde::{Deserialize, Serialize};
use utoipa::{
    openapi::{schema::ObjectBuilder, RefOr, Schema, Type},
    PartialSchema, ToSchema,
};

/// How a dead letter's last attempt failed, as the API names it.
pub(crate) const KINDS: [&str; 5] = ["auth", "rate_limited", "transient", "ambiguous", "rejected"];

/// The schema of a failure kind: one of [`KINDS`].
pub(crate) struct DeadLetterKind;

impl PartialSchema for DeadLetterKind {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(KINDS))
            .description(Some("How a dead letter's last attempt failed."))
            .into()
    }
}

impl ToSchema for DeadLetterKind {
    fn name() -> std::borrow::Cow<'static, str> {
        "DeadLetterKind".into()
    }
}

/// Longest `reason` text searched for.
const MAX_REASON: usize = 200;

/// The filter as a client sends it (query string or JSON body); every field narrows.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema, PartialEq)]
pub(crate) struct FilterInput {
    /// Only this workspace's (operators; a member may name only their own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<WorkspaceId>,
    /// Only this account's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<AccountId>,
    /// Only this platform's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<lifeline_kit::openapi::PlatformName>)]
    pub platform: Option<String>,
    /// Only this failure kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<DeadLetterKind>)]
    pub kind: Option<String>,
    /// Only dead letters whose reason contains this text (case-insensitive; spaces, tabs and
    /// line breaks around it are ignored, and it needs another character; no NUL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 200, pattern = r"^[^\x00]*[^\x00 \t\n\r][^\x00]*$")]
    pub reason: Option<String>,
    /// Only dead letters from this moment on (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<lifeline_kit::openapi::Timestamp>)]
    pub since: Option<DateTime<Utc>>,
    /// Only dead letters before this moment (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<lifeline_kit::openapi::Timestamp>)]
    pub until: Option<DateTime<Utc>>,
    /// Only this post.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_id: Option<PostId>,
}

/// A recorded filter read back from the database.
impl TryFrom<String> for FilterInput {
    type Error = serde_json::Error;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        serde_json::from_str(&s)
    }
}

/// A checked filter, scoped to what the caller may see: `workspace` is `None` only for an
/// operator who spans every workspace.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Filter {
    pub workspace: Option<WorkspaceId>,
    pub account: Option<AccountId>,
    pub platform: Option<Platform>,
    pub kind: Option<String>,
    pub reason: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub post: Option<PostId>,
}

/// A filter's mistake or a reach beyond the caller's workspace.
#[derive(Debug, thiserror::Error, PartialEq)]
pub(crate) enum FilterError {
    #[error("{0}")]
    Invalid(String),
    #[error("only an operator may look at another workspace")]
    OtherWorkspace,
}

impl From<FilterError> for ApiError {
    fn from(e: FilterError) -> Self {
        match e {
            FilterError::Invalid(m) => ApiError::bad_request(m),
            FilterError::OtherWorkspace => ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden",
                "only a token with role operator may name another workspace",
            ),
        }
    }
}

/// Checks `input` and scopes it: a member is kept to their workspace `own`; an operator gets
/// what they asked for (every workspace when they name none).
pub(crate) fn scope(
    input: &FilterInput,
    role: Role,
    own: WorkspaceId,
) -> Result<Filter, FilterError> {
    let workspace = match (role, input.workspace) {
        (Role::Operator, w) => w,
        (Role::Member, None) => Some(own),
        (Role::Member, Some(w)) if w == own => Some(own),
        (Role::Member, Some(_)) => return Err(FilterError::OtherWorkspace),
    };
    let platform = input
        .platform
        .as_deref()
        .map(str::parse::<Platform>)
        .transpose()
        .map_err(|e| FilterError::Invalid(e.to_string()))?;
    if let Some(k) = input.kind.as_deref().filter(|k| !KINDS.contains(k)) {
        return Err(FilterError::Invalid(format!(
            "unknown kind {k:?}; kind must be one of {}",
            KINDS.join(", ")
        )));
    }
    let reason = match input.reason.as_deref() {
        Some(r) => {
            crate::api::input::check_words("reason", r, MAX_REASON)
                .map_err(FilterError::Invalid)?;
            Some(r.trim_matches([' ', '\t', '\n', '\r']).to_owned())
        }
        None => None,
    };
    Ok(Filter {
        workspace,
        account: input.account_id,
        platform,
        kind: input.kind.clone(),
        reason,
        since: input.since,
        until: input.until,
        post: input.post_id,
    })
}

impl Filter {
    /// The filter as recorded with a replay and compared by its idempotency key.
    pub(crate) fn record(&self) -> FilterInput {
        FilterInput {
            workspace: self.workspace,
            account_id: self.account,
            platform: self.platform.map(|p| p.as_str().to_owned()),
            kind: self.kind.clone(),
            reason: self.reason.clone(),
            since: self.since,
            until: self.until,
            post_id: self.post,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> WorkspaceId {
        WorkspaceId::new()
    }

    #[test]
    fn a_member_is_kept_to_their_workspace_and_an_operator_may_span_all() {
        let own = ws();
        let none = FilterInput::default();
        assert_eq!(scope(&none, Role::Member, own).unwrap().workspace, Some(own));
        assert_eq!(scope(&none, Role::Operator, own).unwrap().workspace, None);
        let other = FilterInput { workspace: Some(ws()), ..Default::default() };
        assert_eq!(scope(&other, Role::Member, own), Err(FilterError::OtherWorkspace));
        assert_eq!(scope(&other, Role::Operator, own).unwrap().workspace, other.workspace);
        let mine = FilterInput { workspace: Some(own), ..Default::default() };
        assert_eq!(scope(&mine, Role::Member, own).unwrap().workspace, Some(own));
    }

    #[test]
    fn each_bad_filter_is_refused_with_what_is_wrong() {
        let at = |s: &str| Some(s.parse::<DateTime<Utc>>().unwrap());
        for (input, says) in [
            (FilterInput { platform: Some("myspace".into()), ..Default::default() }, "myspace"),
            (FilterInput { kind: Some("boom".into()), ..Default::default() }, "kind"),
            (FilterInput { reason: Some("  ".into()), ..Default::default() }, "reason"),
            (FilterInput { reason: Some(" \t\r\n".into()), ..Default::default() }, "reason"),
            (FilterInput { reason: Some(String::new()), ..Default::default() }, "reason"),
            (FilterInput { reason: Some("a\0".into()), ..Default::default() }, "NUL"),
            (FilterInput { kind: Some(String::new()), ..Default::default() }, "kind"),
            (FilterInput { reason: Some("x".repeat(201)), ..Default::default() }, "reason"),
        ] {
            match scope(&input, Role::Operator, ws()) {
                Err(FilterError::Invalid(m)) => assert!(m.contains(says), "{m}"),
                other => panic!("{input:?} gave {other:?}"),
            }
        }
        // A window that ends before it starts is not an error: it matches nothing.
        let inverted = FilterInput {
            since: at("2026-01-02T00:00:00Z"),
            until: at("2026-01-01T00:00:00Z"),
            ..Default::default()
        };
        assert!(scope(&inverted, Role::Operator, ws()).is_ok());
    }

    #[test]
    fn a_filter_given_as_an_array_is_refused() {
        use axum::Json;
        for filter in [serde_json::json!([]), serde_json::json!([null, null])] {
            let body = serde_json::json!({ "filter": filter, "dry_run": true });
            let read =
                lifeline_kit::http::json_object::<super::super::ReplayRequest>(Ok(Json(body)));
            let e = read.map(|_| ()).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
            assert!(e.message.contains("expected struct FilterInput"), "{}", e.message);
        }
    }

    #[test]
    fn the_kinds_documented_are_the_kinds_accepted() {
        let schema = serde_json::to_value(DeadLetterKind::schema()).unwrap();
        assert_eq!(schema["enum"], serde_json::json!(KINDS));
        for kind in KINDS {
            let input = FilterInput { kind: Some(kind.into()), ..Default::default() };
            assert!(scope(&input, Role::Operator, ws()).is_ok(), "{kind}");
        }
    }

    #[test]
    fn a_scoped_filter_records_the_workspace_it_was_kept_to() {
        let own = ws();
        let input = FilterInput {
            platform: Some("x".into()),
            kind: Some("rejected".into()),
            reason: Some(" Too Long ".into()),
            ..Default::default()
        };
        let f = scope(&input, Role::Member, own).unwrap();
        let recorded = f.record();
        assert_eq!(recorded.workspace, Some(own));
        assert_eq!(recorded.reason.as_deref(), Some("Too Long"));
        assert_eq!(scope(&recorded, Role::Member, own).unwrap(), f, "recording is stable");
    }
}
