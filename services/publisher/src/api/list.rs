//! `GET /v1/posts`: the workspace's posts, newest first, by pages, filtered by status, account,
//! platform and scheduled time.

use axum::extract::{rejection::QueryRejection, Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use lifeline_kit::openapi::{ErrorBody, Unauthorized};
use lifeline_kit::{
    auth::Workspace,
    http::{rejection, ApiError},
    ids::AccountId,
    Platform,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    model::{Post, PostStatus},
    store::{self, posts::PostFilter},
    AppState,
};

const MAX_LIMIT: i64 = 1000;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only this account's posts.
    #[param(value_type = Option<AccountId>)]
    account_id: Option<String>,
    /// One status, or several separated by commas, without spaces (`failed_auth,retry_requested`).
    #[param(
        example = "scheduled,failed_auth",
        pattern = r"^(scheduled|publishing|published|failed_auth|retry_requested|dead_lettered|cancelled)(,(scheduled|publishing|published|failed_auth|retry_requested|dead_lettered|cancelled))*$"
    )]
    status: Option<String>,
    /// Only this platform's posts.
    #[param(value_type = Option<lifeline_kit::openapi::PlatformName>)]
    platform: Option<String>,
    /// Only posts scheduled at or after this moment (RFC 3339).
    scheduled_from: Option<DateTime<Utc>>,
    /// Only posts scheduled before this moment (RFC 3339); a window that ends before it starts
    /// matches nothing.
    scheduled_to: Option<DateTime<Utc>>,
    /// The `next` of the previous page.
    #[param(
        pattern = r"^-?[0-9]{1,16}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    after: Option<String>,
    /// Posts per page (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// A page of posts, newest first.
#[derive(Serialize, ToSchema)]
pub(crate) struct PostList {
    posts: Vec<Post>,
    /// Pass as `after` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// The filters, checked: each mistake is a 400 naming the parameter.
struct Filters {
    filter: PostFilter,
    limit: i64,
}

fn filters(q: ListQuery) -> Result<Filters, ApiError> {
    let account = q
        .account_id
        .map(|a| a.parse())
        .transpose()
        .map_err(|_| ApiError::bad_request("account_id is not a valid id"))?;
    let statuses = match q.status {
        None => None,
        Some(list) => {
            let wanted = list.split(',').map(|name| {
                PostStatus::parse(name).ok_or_else(|| {
                    let known: Vec<&str> = PostStatus::ALL.iter().map(|s| s.as_str()).collect();
                    ApiError::bad_request(format!(
                        "unknown status {name:?}; status must be one or more of {}, separated by commas",
                        known.join(", ")
                    ))
                })
            });
            Some(wanted.collect::<Result<Vec<_>, _>>()?)
        }
    };
    let platform = q
        .platform
        .map(|p| p.parse::<Platform>())
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    let before = q.after.as_deref().map(crate::cursor::decode).transpose()?;
    let filter = PostFilter {
        account,
        statuses,
        platform,
        scheduled_from: q.scheduled_from,
        scheduled_to: q.scheduled_to,
        before,
    };
    Ok(Filters { filter, limit })
}

/// The workspace's posts, newest first, by pages.
#[utoipa::path(
    get,
    path = "/v1/posts",
    operation_id = "list_posts",
    tag = "posts",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page; pass its `next` as `after` for the next one.", body = PostList),
        (status = 400, description = "`bad_request`: an unknown parameter, status or platform, a bad id, time or cursor, `limit` out of range, or `scheduled_from` not before `scheduled_to`.", body = ErrorBody),
        (status = 401, response = Unauthorized),
    ),
)]
pub(crate) async fn list(
    State(app): State<AppState>,
    Workspace(ws): Workspace,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<PostList>, ApiError> {
    let Query(q) = query.map_err(rejection)?;
    let f = filters(q)?;
    let mut posts = store::posts::page(&app.pool, ws, &f.filter, f.limit + 1).await?;
    let more = posts.len() as i64 > f.limit;
    posts.truncate(f.limit as usize);
    let next =
        if more { posts.last().map(|p| crate::cursor::encode(p.created_at, p.id.0)) } else { None };
    Ok(Json(PostList { posts, next }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(s: &str) -> Result<Option<Vec<PostStatus>>, String> {
        let q = ListQuery {
            account_id: None,
            status: Some(s.into()),
            platform: None,
            scheduled_from: None,
            scheduled_to: None,
            after: None,
            limit: None,
        };
        filters(q).map(|f| f.filter.statuses).map_err(|e| e.message)
    }

    /// The `status` pattern of the document, from the parameter as utoipa describes it.
    fn documented_pattern() -> regex::Regex {
        use utoipa::IntoParams as _;
        let params = ListQuery::into_params(|| None);
        let p = params.iter().find(|p| p.name == "status").unwrap();
        let schema = serde_json::to_value(&p.schema).unwrap();
        regex::Regex::new(schema["pattern"].as_str().unwrap()).unwrap()
    }

    #[test]
    fn the_status_list_is_what_its_documented_pattern_says() {
        let pattern = documented_pattern();
        let names: Vec<&str> = PostStatus::ALL.iter().map(|s| s.as_str()).collect();
        let mut cases: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        cases.push(names.join(","));
        cases.extend(
            [
                "",
                ",",
                "scheduled,",
                ",scheduled",
                "scheduled, failed_auth",
                " scheduled",
                "SCHEDULED",
                "draft",
            ]
            .map(String::from),
        );
        for case in cases {
            let accepted = status(&case).is_ok();
            assert_eq!(
                accepted,
                pattern.is_match(&case),
                "{case:?}: the handler and the document disagree"
            );
        }
        assert_eq!(
            status("failed_auth,retry_requested").unwrap().unwrap(),
            [PostStatus::FailedAuth, PostStatus::RetryRequested]
        );
        assert!(status("scheduled, failed_auth")
            .unwrap_err()
            .contains("unknown status \" failed_auth\""));
    }
}
