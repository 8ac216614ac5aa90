//! Tests of the module above.

use axum::http::HeaderValue;

use super::*;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_str(v).expect("header value"));
    }
    h
}

#[test]
fn requests_from_other_origins_are_refused() {
    let public = Url::parse("https://lifeline.example").expect("url");
    let ok = |h: &[(&'static str, &str)]| same_origin(&headers(h), &public).is_ok();
    assert!(ok(&[("origin", "https://lifeline.example")]));
    assert!(
        !ok(&[("origin", "http://lifeline.example"), ("host", "lifeline.example")]),
        "http is another origin than https"
    );
    assert!(!ok(&[("origin", "https://evil.example")]));
    assert!(!ok(&[("origin", "null")]));
    // Chromium's form post from a no-referrer page: an opaque origin, told apart by
    // Sec-Fetch-Site.
    assert!(ok(&[("origin", "null"), ("sec-fetch-site", "same-origin")]));
    assert!(!ok(&[("origin", "null"), ("sec-fetch-site", "cross-site")]));
    assert!(!ok(&[("origin", "null"), ("sec-fetch-site", "none")]));
    assert!(!ok(&[("origin", "https://evil.example"), ("host", "lifeline.example")]));
    assert!(ok(&[("sec-fetch-site", "same-origin")]));
    assert!(!ok(&[("sec-fetch-site", "cross-site")]));
    assert!(!ok(&[("sec-fetch-site", "same-site")]));
    assert!(ok(&[]), "a client that is not a browser carries no one's cookie");

    let local = Url::parse("http://127.0.0.1:8080").expect("url");
    let h = headers(&[("origin", "http://localhost:8080"), ("host", "localhost:8080")]);
    assert!(same_origin(&h, &local).is_ok(), "the gateway under another host name");
    let h = headers(&[("origin", "http://localhost:9999"), ("host", "localhost:8080")]);
    assert!(same_origin(&h, &local).is_err());
}

#[test]
fn the_session_cookie_is_found_among_others() {
    let h = headers(&[("cookie", "a=1; lifeline_session=abc; b=2")]);
    assert_eq!(session_of(&h).as_deref(), Some("abc"));
    let h = headers(&[("cookie", "lifeline_sessionx=abc"), ("cookie", "lifeline_session=")]);
    assert_eq!(session_of(&h), None);
}

#[test]
fn cookies_are_secure_over_https_only() {
    let mut page = PageConfig {
        public_url: Url::parse("https://lifeline.example").expect("url"),
        link_ttl: Duration::from_secs(60),
        session_ttl: Duration::from_secs(3600),
    };
    let cookie = session_cookie(&page, "id");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    page.public_url = Url::parse("http://127.0.0.1:8080").expect("url");
    assert!(!session_cookie(&page, "id").contains("Secure"));
}
