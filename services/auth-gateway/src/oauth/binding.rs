//! Binds an OAuth flow to the browser that started it. The start answer sets a random cookie
//! (one per flow, so two tabs can connect at once) whose SHA-256 is stored with the session;
//! the callback and the confirmation refuse a request without it. An attacker who starts a
//! connect in their own workspace and sends the authorize URL to someone else gets nothing: the
//! victim's browser never had the cookie.

use axum::http::HeaderMap;
use subtle::ConstantTimeEq as _;

use crate::session::{cookie_value, PageConfig};

/// Cookies are sent only to the OAuth routes (`/oauth/callback/…`, `/oauth/confirm`, …).
const PATH: &str = "/oauth";

/// The cookie's name for one flow: a prefix of the state's hash, which the callback can
/// compute from the state it receives (the state itself is never in a cookie).
pub(super) fn cookie_name(state_hash: &str) -> String {
    format!("lifeline_oauth_{}", &state_hash[..16.min(state_hash.len())])
}

/// `Set-Cookie` for a new flow: HttpOnly, SameSite=Lax (sent on the platform's top-level
/// redirect back, never on a cross-site subrequest), Secure when the page is served over https.
pub(super) fn set_cookie(
    page: &PageConfig,
    state_hash: &str,
    binding: &str,
    max_age: u64,
) -> String {
    let secure = if page.secure_cookies() { "; Secure" } else { "" };
    format!(
        "{}={binding}; HttpOnly; SameSite=Lax; Path={PATH}; Max-Age={max_age}{secure}",
        cookie_name(state_hash)
    )
}

/// `Set-Cookie` that removes a finished flow's cookie.
pub(super) fn clear_cookie(page: &PageConfig, state_hash: &str) -> String {
    set_cookie(page, state_hash, "", 0)
}

/// Whether the request carries the cookie whose hash the session stored. A session without a
/// stored hash (started before binding existed) never matches.
pub(super) fn matches(headers: &HeaderMap, state_hash: &str, stored: Option<&str>) -> bool {
    let Some(stored) = stored else { return false };
    let Some(value) = cookie_value(headers, &cookie_name(state_hash)) else { return false };
    let presented = crate::secret::hash(&value);
    presented.as_bytes().ct_eq(stored.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{header, HeaderValue};

    fn page(url: &str) -> PageConfig {
        PageConfig {
            public_url: url.parse().expect("url"),
            link_ttl: std::time::Duration::from_secs(60),
            session_ttl: std::time::Duration::from_secs(60),
        }
    }

    fn with_cookie(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(cookie).expect("header"));
        h
    }

    #[test]
    fn only_the_cookie_of_this_flow_matches() {
        let hash = crate::secret::hash("state-1");
        let stored = crate::secret::hash("binding-1");
        let name = cookie_name(&hash);
        assert!(matches(&with_cookie(&format!("a=b; {name}=binding-1")), &hash, Some(&stored)));
        // Another value, another flow's cookie, no cookie, or a session without a binding.
        assert!(!matches(&with_cookie(&format!("{name}=binding-2")), &hash, Some(&stored)));
        let other = cookie_name(&crate::secret::hash("state-2"));
        assert!(!matches(&with_cookie(&format!("{other}=binding-1")), &hash, Some(&stored)));
        assert!(!matches(&HeaderMap::new(), &hash, Some(&stored)));
        assert!(!matches(&with_cookie(&format!("{name}=binding-1")), &hash, None));
    }

    #[test]
    fn the_cookie_is_scoped_and_secure_over_https() {
        let c = set_cookie(&page("https://lifeline.example"), "abcdef0123456789ff", "v", 600);
        assert_eq!(
            c,
            "lifeline_oauth_abcdef0123456789=v; HttpOnly; SameSite=Lax; Path=/oauth; Max-Age=600; Secure"
        );
        let c = clear_cookie(&page("http://127.0.0.1:8080"), "abcdef0123456789ff");
        assert!(
            c.ends_with("Max-Age=0") && c.starts_with("lifeline_oauth_abcdef0123456789=;"),
            "{c}"
        );
    }
}
