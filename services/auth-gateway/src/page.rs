//! The Accounts page: static HTML, CSS and JavaScript (no inline script, strict CSP, nothing
//! from a CDN), and the small server-rendered pages around it (sign-in, outcomes). The page
//! signs in through `session.rs` and reads everything through the JSON APIs.

use axum::{
    http::{header, HeaderValue},
    response::{Html, IntoResponse, Response},
    routing::get,
    Router,
};

use lifeline_kit::Platform;

use crate::AppState;

/// The Content-Security-Policy of every page and asset: only this origin's own files run or
/// style anything, nothing frames the page, and forms post only here.
pub(crate) const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(accounts_page))
        .route("/assets/accounts.js", get(accounts_js))
        .route("/assets/accounts.css", get(accounts_css))
        // The outcome pages of older links and the OAuth callback use this name.
        .route("/style.css", get(style_css))
        .layer(axum::middleware::map_response(security_headers))
}

/// The Accounts page. Its script signs in through `/session/token` (the page session) and
/// reads everything through the JSON APIs; without a session it asks for a page link.
#[utoipa::path(
    get,
    path = "/",
    operation_id = "accounts_page",
    tag = "page",
    responses((status = 200, description = "The page (static; strict CSP, nothing from elsewhere).", content_type = "text/html", body = String)),
)]
pub(crate) async fn accounts_page() -> Html<&'static str> {
    Html(ACCOUNTS_PAGE)
}

/// The Accounts page's script.
#[utoipa::path(
    get,
    path = "/assets/accounts.js",
    operation_id = "accounts_js",
    tag = "page",
    responses((status = 200, description = "The script.", content_type = "text/javascript", body = String)),
)]
pub(crate) async fn accounts_js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

/// The pages' style sheet.
#[utoipa::path(
    get,
    path = "/assets/accounts.css",
    operation_id = "accounts_css",
    tag = "page",
    responses((status = 200, description = "The style sheet.", content_type = "text/css", body = String)),
)]
pub(crate) async fn accounts_css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

/// The pages' style sheet under the name older outcome pages use.
#[utoipa::path(
    get,
    path = "/style.css",
    operation_id = "style_css",
    tag = "page",
    responses((status = 200, description = "The style sheet (as `/assets/accounts.css`).", content_type = "text/css", body = String)),
)]
pub(crate) async fn style_css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// Adds the security headers to a page, asset or session answer (keeping any it set itself).
pub(crate) async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    }
    response
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn document(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} · Lifeline</title><link rel=\"stylesheet\" href=\"/assets/accounts.css\"></head>\
         <body><main class=\"narrow\">{body}</main></body></html>",
        t = escape(title),
    )
}

/// A minimal page with a title and a message (callback outcomes, refused links).
pub(crate) fn message_page(title: &str, message: &str) -> String {
    document(
        title,
        &format!(
            "<h1>{t}</h1><p>{m}</p><p><a href=\"/\">Go to the Accounts page</a></p>",
            t = escape(title),
            m = escape(message)
        ),
    )
}

/// The page a sign-in link opens: a button that posts the link (GET never uses it up).
pub(crate) fn signin_page(link: &str) -> String {
    document(
        "Sign in",
        &format!(
            "<h1>Sign in to Lifeline</h1>\
             <p>This link signs this browser in to your workspace's Accounts page. It works once.</p>\
             <form method=\"post\" action=\"/signin\">\
             <input type=\"hidden\" name=\"link\" value=\"{link}\">\
             <button type=\"submit\" class=\"primary\">Sign in</button></form>",
            link = escape(link)
        ),
    )
}

/// How a page names an account: its `@handle`, or its display name where the platform has no
/// handles.
pub(crate) fn handle_label(platform: Platform, username: &str, display_name: &str) -> String {
    match crate::accounts::handle(username) {
        Some(h) => h,
        None if !display_name.trim().is_empty() => display_name.trim().to_owned(),
        None => format!("your {} account", platform.display_name()),
    }
}

/// "Connect @acme (LinkedIn) to workspace …?": asked before a new identity is stored.
pub(crate) fn confirm_page(handle: &str, platform: &str, workspace: &str, token: &str) -> String {
    let field =
        format!("<input type=\"hidden\" name=\"confirmation\" value=\"{}\">", escape(token));
    document(
        "Confirm the connection",
        &format!(
            "<h1>Connect {h} ({p}) to workspace {w}?</h1>\
             <p>Lifeline will keep this account connected and publish the posts your workspace \
             schedules for it. Connect it only if you started this yourself.</p>\
             <form method=\"post\" action=\"/oauth/confirm\">{field}\
             <button type=\"submit\" name=\"decision\" value=\"connect\" class=\"primary\">Connect {h}</button> \
             <button type=\"submit\" name=\"decision\" value=\"cancel\">Cancel</button></form>",
            h = escape(handle),
            p = escape(platform),
            w = escape(workspace),
        ),
    )
}

/// A consent that lacked permissions publishing needs: which, why, and a button that asks the
/// platform again.
pub(crate) fn ask_again_page(
    handle: &str,
    platform: &str,
    missing: &[(&str, &str)],
    token: &str,
    reconnect: bool,
) -> String {
    let items: String = missing
        .iter()
        .map(|(scope, why)| format!("<li><code>{}</code>: {}</li>", escape(scope), escape(why)))
        .collect();
    let state = if reconnect {
        "<p>The account stays marked as needing a reconnect until it is granted; waiting posts keep waiting.</p>"
    } else {
        "<p>Nothing was connected.</p>"
    };
    document(
        "A permission is missing",
        &format!(
            "<h1>{p} did not grant everything Lifeline needs for {h}</h1>\
             <p>These permissions were unticked on {p}'s consent screen:</p><ul>{items}</ul>{state}\
             <form method=\"post\" action=\"/oauth/ask-again\">\
             <input type=\"hidden\" name=\"confirmation\" value=\"{t}\">\
             <button type=\"submit\" class=\"primary\">Ask {p} again</button></form>\
             <p><a href=\"/\">Go to the Accounts page</a></p>",
            h = escape(handle),
            p = escape(platform),
            t = escape(token),
        ),
    )
}

const ACCOUNTS_PAGE: &str = include_str!("page/index.html");
const CSS: &str = include_str!("page/accounts.css");
const JS: &str = include_str!("page/accounts.js");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_what_they_show() {
        let page = signin_page("a\"><script>x</script>");
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("value=\"a&quot;&gt;&lt;script&gt;"), "{page}");
        let page = message_page("<b>", "it's");
        assert!(page.contains("&lt;b&gt;") && page.contains("it&#39;s"), "{page}");
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let confirm = confirm_page("@a", "X", "w", "t");
        let ask = ask_again_page("@a", "X", &[("tweet.write", "to post")], "t", true);
        for (name, html) in [
            ("index.html", ACCOUNTS_PAGE),
            ("signin", &*signin_page("x")),
            ("confirm", &*confirm),
            ("ask again", &*ask),
        ] {
            let lower = html.to_ascii_lowercase();
            for script in lower.match_indices("<script").map(|(i, _)| &lower[i..]) {
                let tag = &script[..script.find('>').unwrap_or(script.len())];
                assert!(tag.contains("src="), "{name}: an inline script would break the CSP");
            }
            assert!(!lower.contains("<style"), "{name}: inline styles would break the CSP");
            assert!(!lower.contains(" style=\""), "{name}: style attributes break the CSP");
            assert!(!lower.contains(" onclick="), "{name}: handler attributes break the CSP");
            assert!(!lower.contains("http://") && !lower.contains("https://"), "{name}: no CDN");
        }
    }
}
