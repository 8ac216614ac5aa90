//! OpenAPI 3.1 documents of the services' HTTP APIs, generated from the handlers with `utoipa`
//! (docs/api/README.md). What every service shares lives here:
//!
//! - [`ErrorBody`], the component `Error`: the one body every error answer has ([`ApiError`]);
//! - the id types of [`crate::ids`] as `string`/`uuid` components, [`PlatformName`] and
//!   [`Timestamp`];
//! - the security schemes ([`BEARER`], [`OPERATOR`] where an operation needs that role, and the
//!   gateway's page session cookie [`PAGE_SESSION`]);
//! - reusable responses ([`Unauthorized`], [`Forbidden`]);
//! - [`document`], which completes a service's derived document (title, version, security
//!   schemes, the ops endpoints, 500 and 503 on every API operation);
//! - [`route`], serving it at `GET /openapi.json`;
//! - [`assert_committed`], the drift check against `docs/api/<service>.openapi.json`.
//!
//! A service describes its handlers with `#[utoipa::path]`, lists them in a
//! `#[derive(utoipa::OpenApi)]`, and passes that to [`document`]:
//!
//! ```ignore
//! #[derive(utoipa::OpenApi)]
//! #[openapi(paths(api::list, api::show))]
//! struct ApiDoc;
//!
//! pub fn openapi() -> utoipa::openapi::OpenApi {
//!     lifeline_kit::openapi::document(ApiDoc::openapi(), SERVICE, env!("CARGO_PKG_VERSION"))
//! }
//! // routes: .merge(lifeline_kit::openapi::route(&openapi()))
//! // test:   lifeline_kit::openapi::assert_committed(&openapi(), SERVICE)
//! ```
//!
//! [`ApiError`]: crate::http::ApiError

use std::{borrow::Cow, path::PathBuf};

use axum::{
    body::Bytes,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use utoipa::{
    openapi::{
        path::{Operation, PathItem},
        schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type},
        security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
        Components, ContentBuilder, HeaderBuilder, InfoBuilder, OpenApi, Ref, RefOr,
        Response as ApiResponse, ResponseBuilder,
    },
    PartialSchema, ToResponse, ToSchema,
};

use crate::{
    ids::{AccountId, PostId, WorkspaceId},
    Platform,
};

/// The security scheme of the JSON APIs: `Authorization: Bearer <jwt>` (docs/architecture.md,
/// "API authentication"). Use it as `security(("bearer" = []))`.
pub const BEARER: &str = "bearer";
/// The Accounts page's session cookie (`lifeline_session`), on the gateway only. Use it as
/// `security(("page_session" = []))`.
pub const PAGE_SESSION: &str = "page_session";
/// The tag of `/healthz`, `/readyz`, `/metrics` and `/openapi.json`.
pub const OPS_TAG: &str = "ops";
/// The tag of the operator's operations (dead letters across workspaces, replays).
pub const OPERATOR_TAG: &str = "operator";
/// The security scheme of operations that only a token with `role: operator` may call: the
/// same bearer JWT, named apart so that a client (and the API test) knows which token to send.
/// Use it as `security(("operator" = []))`; the document declares it where it is used.
pub const OPERATOR: &str = "operator";
/// The environment variable that makes [`assert_committed`] rewrite the files (`make openapi`).
pub const WRITE_ENV: &str = "LIFELINE_WRITE_OPENAPI";

/// The body of every error answer: `{"error": code, "message": text, "details"?: object}`.
#[derive(ToSchema)]
#[schema(as = Error)]
#[allow(dead_code)] // only its schema is used; `ApiError` writes the JSON
pub struct ErrorBody {
    /// A stable, machine-readable code (`not_found`, `unauthorized`, `bad_request`, …).
    #[schema(example = "not_found")]
    error: String,
    /// What went wrong and what to do about it, in words for people.
    #[schema(example = "account not found")]
    message: String,
    /// Specifics a client can act on (which field, which permission), where the code has any.
    #[schema(value_type = Object, required = false)]
    details: Option<serde_json::Value>,
}

macro_rules! uuid_schema {
    ($($ty:ident => $doc:literal),* $(,)?) => {$(
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
                    .description(Some($doc))
                    .into()
            }
        }
        impl ToSchema for $ty {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($ty))
            }
        }
    )*};
}

uuid_schema!(
    WorkspaceId => "A Lifeline workspace (a customer of the publishing product).",
    AccountId => "A connected social account.",
    PostId => "A post scheduled through the publisher.",
);

/// The schema of [`Platform`] (which lives in `lifeline-events`, without utoipa): one of the
/// platforms' ids. Use it with `#[schema(value_type = lifeline_kit::openapi::PlatformName)]`.
pub struct PlatformName;

impl PartialSchema for PlatformName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(Platform::ALL.iter().map(|p| p.as_str())))
            .description(Some("A social platform Lifeline connects accounts of."))
            .into()
    }
}

impl ToSchema for PlatformName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Platform")
    }
}

/// A moment in RFC 3339 (`2026-06-01T09:00:00Z`), as a component: `string`, `date-time`. A
/// request field of type `Option<DateTime<Utc>>` is documented as `"type": ["string", "null"]`
/// with the format beside it, which schemathesis 4.32.5 fills with `""` when it builds a body
/// around another field (docs/api/README.md); as `#[schema(value_type = Option<Timestamp>)]` it
/// is `oneOf: [null, Timestamp]`, which says the same and is generated correctly.
pub struct Timestamp;

impl PartialSchema for Timestamp {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("A moment, in RFC 3339 (`2026-06-01T09:00:00Z`)."))
            .into()
    }
}

impl ToSchema for Timestamp {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Timestamp")
    }
}

fn error_content() -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(Ref::from_schema_name("Error"))).build()
}

/// 401: no, a malformed, or a refused bearer token (the message says which claim failed).
pub struct Unauthorized;

impl<'r> ToResponse<'r> for Unauthorized {
    fn response() -> (&'r str, RefOr<ApiResponse>) {
        let response = ResponseBuilder::new()
            .description(
                "`unauthorized`: the bearer token is missing, malformed, expired or refused \
                 (the message says which rule failed).",
            )
            .header(
                "WWW-Authenticate",
                HeaderBuilder::new().schema(String::schema()).description(Some("`Bearer`")).build(),
            )
            .content("application/json", error_content())
            .build();
        ("Unauthorized", response.into())
    }
}

/// 403 `forbidden`: a member token on an operator endpoint.
pub struct Forbidden;

impl<'r> ToResponse<'r> for Forbidden {
    fn response() -> (&'r str, RefOr<ApiResponse>) {
        let response = ResponseBuilder::new()
            .description("`forbidden`: the endpoint needs a token with `role: operator`.")
            .content("application/json", error_content())
            .build();
        ("Forbidden", response.into())
    }
}

fn internal() -> ApiResponse {
    ResponseBuilder::new()
        .description(
            "`internal`: something failed on the service's side (the cause is in its logs); \
             nothing is half done.",
        )
        .content("application/json", error_content())
        .build()
}

fn starting() -> ApiResponse {
    ResponseBuilder::new()
        .description("`starting`: the service is still starting up; try again in a moment.")
        .header(
            "Retry-After",
            HeaderBuilder::new().schema(String::schema()).description(Some("`1`")).build(),
        )
        .content("application/json", error_content())
        .build()
}

/// The ops endpoints every service serves (`http::ops_router`) and `GET /openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(crate::http::healthz, crate::http::readyz, crate::http::metrics, openapi_json))]
struct Ops;

/// Completes a service's derived document: `info.title` is the service, `info.version` its
/// crate version; adds the `Error` component, the security schemes, the reusable responses, the
/// ops endpoints, and the 500 and 503 answers every API operation can give (a failure on the
/// service's side; a request during start-up, see `service::run`).
pub fn document(api: OpenApi, service: &str, version: &str) -> OpenApi {
    use utoipa::OpenApi as _;
    let mut api = api;
    for (_, item) in api.paths.paths.iter_mut() {
        for op in operations(item) {
            let responses = &mut op.responses.responses;
            responses.entry("500".into()).or_insert_with(|| internal().into());
            responses.entry("503".into()).or_insert_with(|| starting().into());
        }
    }
    api.merge(Ops::openapi());
    api.info = InfoBuilder::new()
        .title(service)
        .version(version)
        .description(Some(format!(
            "The HTTP API of Lifeline's {service}, generated from its code \
             (docs/api/{service}.openapi.json; docs/api/README.md). Errors answer \
             `{{\"error\", \"message\", \"details\"?}}` (`Error`)."
        )))
        .license(api.info.license.take())
        .build();
    let components = api.components.get_or_insert_with(Components::new);
    let mut schemas = vec![(ErrorBody::name().into_owned(), ErrorBody::schema())];
    ErrorBody::schemas(&mut schemas);
    components.schemas.extend(schemas);
    let paths = serde_json::to_string(&api.paths).unwrap_or_default();
    for (name, response) in [Unauthorized::response(), Forbidden::response()] {
        if paths.contains(&format!("\"#/components/responses/{name}\"")) {
            components.responses.insert(name.to_owned(), response);
        }
    }
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "An HS256 JWT signed with `LIFELINE_JWT_SECRET`: `iss` lifeline, `aud` \
                     lifeline-api, `sub`, `ws` (the workspace), `iat`, `exp` (at most \
                     `LIFELINE_JWT_MAX_TTL` after `iat`), `role` member (default) or operator. \
                     `lifelinectl token mint` makes one.",
                ))
                .build(),
        ),
    );
    if uses_scheme(&api, OPERATOR) {
        let components = api.components.get_or_insert_with(Components::new);
        components.add_security_scheme(
            OPERATOR,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "The `bearer` JWT with `role` operator; a member's token is refused (403 \
                         `forbidden`).",
                    ))
                    .build(),
            ),
        );
    }
    if uses_scheme(&api, PAGE_SESSION) {
        let components = api.components.get_or_insert_with(Components::new);
        components.add_security_scheme(
            PAGE_SESSION,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "lifeline_session",
                "The Accounts page's session (HttpOnly, SameSite=Lax), set by `POST /signin`.",
            ))),
        );
    }
    api
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.options.as_mut(),
        item.head.as_mut(),
        item.patch.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

fn uses_scheme(api: &OpenApi, scheme: &str) -> bool {
    // A security requirement serializes as {"<scheme>": [scopes]}.
    let json = serde_json::to_value(&api.paths).unwrap_or_default();
    fn walk(v: &serde_json::Value, scheme: &str) -> bool {
        match v {
            serde_json::Value::Object(m) => {
                m.get("security")
                    .and_then(|s| s.as_array())
                    .is_some_and(|reqs| reqs.iter().any(|r| r.get(scheme).is_some()))
                    || m.values().any(|v| walk(v, scheme))
            }
            serde_json::Value::Array(a) => a.iter().any(|v| walk(v, scheme)),
            _ => false,
        }
    }
    walk(&json, scheme)
}

/// The document as committed: pretty JSON with a trailing newline.
pub fn to_json(api: &OpenApi) -> String {
    let mut json = api.to_pretty_json().expect("an OpenAPI document serializes");
    json.push('\n');
    json
}

/// The service's OpenAPI document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = OPS_TAG,
    responses(
        (status = 200, description = "This service's OpenAPI 3.1 document (not cached).",
            content_type = "application/json", body = Object),
        (status = 503, description = "`starting`: the document is served with the service's \
            routes, once start-up is done.", body = ErrorBody),
    ),
)]
async fn openapi_json(State(body): State<Bytes>) -> Response {
    ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], body)
        .into_response()
}

/// `GET /openapi.json`, no authentication, serving `api` as [`to_json`] writes it.
pub fn route<S: Clone + Send + Sync + 'static>(api: &OpenApi) -> Router<S> {
    let body = Bytes::from(to_json(api));
    Router::new().route("/openapi.json", get(openapi_json).with_state(body))
}

/// Where the committed documents live: `docs/api/` of the workspace.
pub fn committed_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/api")
}

/// The drift check, for a unit test of each service: `api` must equal
/// `docs/api/<service>.openapi.json`. With `LIFELINE_WRITE_OPENAPI=1` (`make openapi`) the file
/// is written instead.
pub fn assert_committed(api: &OpenApi, service: &str) {
    assert_eq!(api.info.title, service, "info.title names the service");
    let path = committed_dir().join(format!("{service}.openapi.json"));
    let generated = to_json(api);
    if std::env::var(WRITE_ENV).is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(committed_dir()).expect("docs/api can be created");
        std::fs::write(&path, &generated).expect("the document can be written");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        let near = |s: &str| s.lines().nth(line).unwrap_or("<end of file>").to_owned();
        panic!(
            "docs/api/{service}.openapi.json does not match the code (first difference at line \
             {}: committed {:?}, generated {:?}). Run `make openapi` and commit the file.",
            line + 1,
            near(&committed),
            near(&generated),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_component_has_the_shape_api_error_writes() {
        let api = document(OpenApi::default(), "test-service", "1.2.3");
        let json = serde_json::to_value(&api).expect("json");
        assert_eq!(json["openapi"], "3.1.0");
        assert_eq!(json["info"]["title"], "test-service");
        assert_eq!(json["info"]["version"], "1.2.3");
        let error = &json["components"]["schemas"]["Error"];
        assert_eq!(error["required"], serde_json::json!(["error", "message"]), "{error}");
        assert_eq!(error["properties"]["details"]["type"], "object", "{error}");
        assert_eq!(json["components"]["securitySchemes"][BEARER]["scheme"], "bearer");
        assert!(json["components"]["securitySchemes"].get(PAGE_SESSION).is_none());
        assert!(json["components"]["securitySchemes"].get(OPERATOR).is_none());
        for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
            assert!(json["paths"][path]["get"].is_object(), "{path}");
            assert!(json["paths"][path]["get"]["responses"].get("500").is_none(), "{path}");
        }
    }

    #[tokio::test]
    async fn api_errors_have_no_field_the_component_lacks() {
        use axum::response::IntoResponse as _;
        let api = document(OpenApi::default(), "test-service", "1.2.3");
        let json = serde_json::to_value(&api).expect("json");
        let properties = &json["components"]["schemas"]["Error"]["properties"];
        let error = crate::http::ApiError::not_found("account")
            .with_details(serde_json::json!({"id": 1}))
            .into_response();
        let body = axum::body::to_bytes(error.into_body(), 1 << 16).await.expect("body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("json body");
        for key in body.as_object().expect("an object").keys() {
            assert!(properties.get(key).is_some(), "{key} is not in the Error component");
        }
    }

    #[tokio::test]
    async fn openapi_json_is_served_uncached() {
        use tower::ServiceExt as _;
        let api = document(OpenApi::default(), "test-service", "1.2.3");
        let router: Router = route(&api);
        let response = router
            .oneshot(
                axum::http::Request::get("/openapi.json").body(axum::body::Body::empty()).unwrap(),
            )
            .await
            .expect("answers");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
        assert_eq!(body, to_json(&api).as_bytes());
    }
}
