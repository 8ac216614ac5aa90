//! The Accounts page: a static page that reads the API token from the URL fragment (never sent
//! to the server) and shows each account's health with a Reconnect button.

use axum::{response::Html, routing::get, Router};

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/", get(|| async { Html(ACCOUNTS_PAGE) })).route(
        "/style.css",
        get(|| async { ([(axum::http::header::CONTENT_TYPE, "text/css")], CSS) }),
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A minimal page with a title and a message (callback outcomes).
pub(crate) fn message_page(title: &str, message: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=utf-8><title>{t}</title>{STYLE}</head>\
         <body><h1>{t}</h1><p>{m}</p><p><a href=\"/\">Back to accounts</a></p></body></html>",
        t = escape(title),
        m = escape(message)
    )
}

const STYLE: &str = "<link rel=\"stylesheet\" href=\"/style.css\">";

const CSS: &str = "body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}\
table{border-collapse:collapse;width:100%}td,th{padding:.5rem;border-bottom:1px solid #ddd;text-align:left}\
.warn{color:#a40}.ok{color:#070}button{padding:.3rem .8rem}";

const ACCOUNTS_PAGE: &str = include_str!("accounts.html");
