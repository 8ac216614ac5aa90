//! Small helpers shared by the platforms: random opaque strings, form and
//! Basic-auth decoding, HTML escaping. None of them can panic on client input.

use std::collections::HashMap;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rand::RngCore as _;

/// `n` random bytes, base64url without padding.
pub(crate) fn random_b64(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Parses an `application/x-www-form-urlencoded` body or query string. Invalid
/// UTF-8 is replaced rather than rejected; the platform then answers with its
/// own "invalid value" error. For a repeated key the first value wins.
pub(crate) fn parse_form(raw: &[u8]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw) {
        out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    out
}

/// Client credentials from an `Authorization: Basic` header. Per RFC 6749
/// §2.3.1 both halves are form-urlencoded before base64. `None` when the
/// header is not valid Basic auth.
pub(crate) fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id), form_decode(secret)))
}

/// Decodes `+` and `%XX`; malformed escapes are kept literally, as lenient
/// servers do, so a client that forgot to encode still works.
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Escapes text for HTML element content and double-quoted attributes.
pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The token of an `Authorization: Bearer …` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// `http://<Host>` of a request, for absolute URLs the platform hands out
/// (YouTube's upload session). The simulator only speaks plain HTTP.
pub(crate) fn request_base(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// A 302 to `redirect_uri` (already validated) with `pairs` appended to its
/// query; an error page if it cannot be parsed after all.
pub(crate) fn redirect_with(redirect_uri: &str, pairs: &[(&str, &str)]) -> Response {
    redirect_to(redirect_uri, pairs).unwrap_or_else(|| error_page("Error", "Invalid redirect_uri"))
}

/// A 302 to `redirect_uri` with `pairs` appended to its query; `None` when
/// it is no URL after all (the platform then shows its own error page).
pub(crate) fn redirect_to(redirect_uri: &str, pairs: &[(&str, &str)]) -> Option<Response> {
    let mut url = url::Url::parse(redirect_uri).ok()?;
    url.query_pairs_mut().extend_pairs(pairs);
    let location = HeaderValue::from_str(url.as_str()).ok()?;
    Some((StatusCode::FOUND, [(header::LOCATION, location)]).into_response())
}

/// `<input type="hidden">` fields that carry an authorize request's
/// parameters through a consent form.
pub(crate) fn hidden_inputs(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                html_escape(k),
                html_escape(v)
            )
        })
        .collect()
}

/// Whether `uri` is an absolute http(s) URL without a fragment, the shape
/// every platform requires of a redirect_uri.
pub(crate) fn valid_redirect_uri(uri: &str) -> bool {
    matches!(url::Url::parse(uri), Ok(u) if matches!(u.scheme(), "http" | "https") && u.fragment().is_none())
}

/// A platform's error page for an authorize request it cannot redirect.
pub(crate) fn error_page(title: &str, detail: &str) -> Response {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body><h1>{t}</h1><p class=\"detail\">{d}</p></body></html>",
        t = html_escape(title),
        d = html_escape(detail)
    );
    (StatusCode::BAD_REQUEST, Html(body)).into_response()
}

/// A JSON response with `status` and `no-store` caching, as token endpoints send.
pub(crate) fn json_no_store(status: StatusCode, body: serde_json::Value) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// Parameters of a request: the query, then (for form bodies) the body; the
/// query wins on conflicts, as Graph does.
pub(crate) fn query_and_form(query: Option<&str>, body: &[u8]) -> HashMap<String, String> {
    let mut params = parse_form(query.unwrap_or_default().as_bytes());
    if !body.is_empty() && !body.starts_with(b"{") {
        for (k, v) in parse_form(body) {
            params.entry(k).or_insert(v);
        }
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_decodes_urlencoded_halves() {
        let h = format!("Basic {}", STANDARD.encode("my%20id:s%3Acret+x"));
        assert_eq!(parse_basic(&h), Some(("my id".into(), "s:cret x".into())));
    }

    #[test]
    fn basic_rejects_garbage() {
        assert_eq!(parse_basic("Basic !!!notbase64"), None);
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic(&format!("Basic {}", STANDARD.encode("nocolon"))), None);
        assert_eq!(parse_basic(""), None);
    }

    #[test]
    fn form_decode_keeps_malformed_escapes() {
        assert_eq!(form_decode("a%zz%"), "a%zz%");
        assert_eq!(form_decode("a%4"), "a%4");
        assert_eq!(form_decode("%41b"), "Ab");
    }

    #[test]
    fn escape() {
        assert_eq!(html_escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
