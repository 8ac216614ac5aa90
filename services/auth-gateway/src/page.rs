//! The Accounts page: static HTML, CSS and JavaScript (no inline script, strict CSP, nothing
//! from a CDN), and the small server-rendered pages around it (sign-in, outcomes). The page
//! signs in through `session.rs` and reads everything through the JSON APIs.

use axum::{
    http::{header, HeaderValue},
    response::{Html, IntoResponse, Response},
    routing::get,
    Router,
};

use crate::AppState;

/// The Content-Security-Policy of every page and asset: only this origin's own files run or
/// style anything, nothing frames the page, and forms post only here.
pub(crate) const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Html(ACCOUNTS_PAGE) }))
        .route("/assets/accounts.js", get(|| async { asset("text/javascript; charset=utf-8", JS) }))
        .route("/assets/accounts.css", get(|| async { asset("text/css; charset=utf-8", CSS) }))
        // The outcome pages of older links and the OAuth callback use this name.
        .route("/style.css", get(|| async { asset("text/css; charset=utf-8", CSS) }))
        .layer(axum::middleware::map_response(security_headers))
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
        for (name, html) in [("index.html", ACCOUNTS_PAGE), ("signin", &*signin_page("x"))] {
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
