//! Where a channel may point: a webhook or Slack URL must be http(s) with a host, and must not
//! resolve to this machine or a private network (the notifier would otherwise be a way into
//! them) unless the operator allows it; an email address must look like one.

use std::net::{IpAddr, SocketAddr};

use url::{Host, Url};

/// Why a target was refused, in words for the API's 400.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("url is not a valid absolute URL")]
    Malformed,
    #[error("url must be http or https")]
    Scheme,
    #[error("url must not carry credentials")]
    Credentials,
    #[error("url's host does not resolve")]
    Unresolvable,
    #[error("url resolves to a loopback, private or link-local address ({0}); refused")]
    Private(IpAddr),
    #[error("address is not a valid email address")]
    Email,
}

/// An address no channel may reach by default: this machine, private and carrier-grade NAT
/// ranges, link-local (cloud metadata lives there), multicast, unspecified, documentation.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || (a == 100 && (64..128).contains(&b))
                || a == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Parses a webhook or Slack URL (the shape only; [`check_resolved`] checks where it leads).
pub fn parse_url(raw: &str) -> Result<Url, TargetError> {
    let url = Url::parse(raw.trim()).map_err(|_| TargetError::Malformed)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(TargetError::Scheme);
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(TargetError::Malformed);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetError::Credentials);
    }
    Ok(url)
}

/// The rule for where a name may lead, at creation and at every send: at least one address,
/// and none internal unless `allow_private`. Answers the addresses to connect to.
pub fn allowed_addrs(
    addrs: Vec<SocketAddr>,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, TargetError> {
    if addrs.is_empty() {
        return Err(TargetError::Unresolvable);
    }
    match addrs.iter().find(|a| is_internal(a.ip())) {
        Some(a) if !allow_private => Err(TargetError::Private(a.ip())),
        _ => Ok(addrs),
    }
}

/// A URL whose host is an address (no name to resolve) is checked as it stands.
pub fn check_ip_literal(url: &Url, allow_private: bool) -> Result<(), TargetError> {
    let ip = match url.host() {
        Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
        Some(Host::Domain(_)) => return Ok(()),
        None => return Err(TargetError::Malformed),
    };
    allowed_addrs(vec![SocketAddr::new(ip, 0)], allow_private).map(|_| ())
}

/// Resolves `host` and applies [`allowed_addrs`].
pub async fn resolve_allowed(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, TargetError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| TargetError::Unresolvable)?
        .collect();
    allowed_addrs(addrs, allow_private)
}

/// Resolves the URL's host and refuses it if any address is internal (unless `allow_private`).
/// Checked again at every send (`delivery::resolve`): a name may later lead elsewhere.
pub async fn check_resolved(url: &Url, allow_private: bool) -> Result<(), TargetError> {
    let host = url.host_str().ok_or(TargetError::Malformed)?;
    let port = url.port_or_known_default().unwrap_or(443);
    resolve_allowed(host, port, allow_private).await.map(|_| ())
}

/// A deliberately plain check (the SMTP server is the final judge): one `@`, a local part of 1
/// to 64 characters, a domain with a dot that neither starts nor ends it, at most 254
/// characters, and no whitespace, control characters, angle brackets or `,;"()[]\\` anywhere.
/// Taken as given (not trimmed). It is [`EMAIL_PATTERN`] with `maxLength: 254`, word for word.
pub fn parse_email(raw: &str) -> Result<String, TargetError> {
    let (local, domain) = raw.split_once('@').ok_or(TargetError::Email)?;
    let bad = |c: char| c.is_whitespace() || c.is_control() || "<>,;\"()[]\\".contains(c);
    if local.is_empty()
        || local.chars().count() > 64
        || raw.chars().count() > 254
        || domain.contains('@')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || raw.chars().any(bad)
    {
        return Err(TargetError::Email);
    }
    Ok(raw.to_owned())
}

/// [`parse_email`] as the document's `pattern` (with `maxLength: 254`). The characters it
/// refuses are spelled out (Rust's whitespace and control characters, the brackets and
/// separators, `@`) rather than `\s`, which ECMA-262, Python and Rust each read differently.
/// The attribute on `NewChannel::Email` repeats it; a unit test keeps the two equal.
pub const EMAIL_PATTERN: &str = r#"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000<>,;"()\[\]\\@]{1,64}@[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000<>,;"()\[\]\\@.][^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000<>,;"()\[\]\\@]*\.[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000<>,;"()\[\]\\@]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000<>,;"()\[\]\\@.]$"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111", "8.8.8.8"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    fn at(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 443)
    }

    #[test]
    fn a_name_may_lead_only_to_public_addresses_unless_allowed() {
        let public = vec![at("93.184.216.34"), at("2606:4700::1111")];
        assert_eq!(allowed_addrs(public.clone(), false), Ok(public));
        // One internal address among public ones is enough to refuse (a rebinding answer).
        let mixed = vec![at("93.184.216.34"), at("10.0.0.7")];
        assert_eq!(allowed_addrs(mixed.clone(), false), Err(TargetError::Private(mixed[1].ip())));
        assert_eq!(allowed_addrs(mixed.clone(), true), Ok(mixed));
        assert_eq!(allowed_addrs(vec![], true), Err(TargetError::Unresolvable));
        assert_eq!(
            allowed_addrs(vec![at("169.254.169.254")], false),
            Err(TargetError::Private("169.254.169.254".parse().unwrap()))
        );
    }

    #[test]
    fn an_address_in_the_url_is_checked_as_it_stands() {
        let url = |u: &str| parse_url(u).unwrap();
        assert!(matches!(
            check_ip_literal(&url("http://127.0.0.1:9/"), false),
            Err(TargetError::Private(_))
        ));
        assert!(matches!(
            check_ip_literal(&url("http://[::1]:9/"), false),
            Err(TargetError::Private(_))
        ));
        assert_eq!(check_ip_literal(&url("http://127.0.0.1:9/"), true), Ok(()));
        assert_eq!(check_ip_literal(&url("https://93.184.216.34/"), false), Ok(()));
        // A name is left to the resolver.
        assert_eq!(check_ip_literal(&url("http://localhost:9/"), false), Ok(()));
    }

    #[test]
    fn urls_need_http_a_host_and_no_credentials() {
        assert!(parse_url("https://example.com/hook").is_ok());
        assert_eq!(parse_url("ftp://example.com/"), Err(TargetError::Scheme));
        assert_eq!(parse_url("not a url"), Err(TargetError::Malformed));
        assert_eq!(parse_url("https://u:p@example.com/"), Err(TargetError::Credentials));
    }

    #[tokio::test]
    async fn loopback_is_refused_unless_allowed() {
        let url = parse_url("http://127.0.0.1:9/hook").unwrap();
        assert!(matches!(check_resolved(&url, false).await, Err(TargetError::Private(_))));
        assert_eq!(check_resolved(&url, true).await, Ok(()));
        let url = parse_url("http://localhost:9/hook").unwrap();
        assert!(matches!(check_resolved(&url, false).await, Err(TargetError::Private(_))));
    }

    #[test]
    fn email_addresses() {
        assert_eq!(parse_email("ops@acme.example").as_deref(), Ok("ops@acme.example"));
        for bad in [
            "",
            "ops",
            "@acme.example",
            "ops@acme",
            "a b@acme.example",
            "a@b@c.d",
            "<a@b.c>",
            " ops@acme.example ",
        ] {
            assert_eq!(parse_email(bad), Err(TargetError::Email), "{bad}");
        }
    }

    #[test]
    fn the_email_pattern_is_parse_email() {
        let pattern = regex::Regex::new(EMAIL_PATTERN).unwrap();
        let long_local = format!("{}@acme.example", "a".repeat(64));
        let too_long_local = format!("{}@acme.example", "a".repeat(65));
        let long = format!("ops@{}.example", "d".repeat(240));
        let too_long = format!("ops@{}.example", "d".repeat(250));
        let cases = [
            "ops@acme.example",
            "o.p+s!#$%&'*/=?^_`{|}~@sub.acme.example",
            "é@ü.example",
            "ops@a..b",
            "a@b.c",
            long_local.as_str(),
            too_long_local.as_str(),
            long.as_str(),
            too_long.as_str(),
            "",
            "ops",
            "@acme.example",
            "ops@",
            "ops@acme",
            "ops@.acme",
            "ops@acme.",
            "a b@acme.example",
            "a@b@c.d",
            "<a@b.c>",
            " ops@acme.example",
            "ops@acme.example\n",
            "ops\u{85}@acme.example",
            "ops\u{a0}@acme.example",
            "ops\u{3000}@acme.example",
            "ops\u{1c}@acme.example",
            "ops\u{7f}@acme.example",
            "ops\u{feff}@acme.example",
            "ops(x)@acme.example",
            "ops@[127.0.0.1]",
            "a\\b@acme.example",
            "a\"b@acme.example",
        ];
        for case in cases {
            let documented = pattern.is_match(case) && case.chars().count() <= 254;
            assert_eq!(parse_email(case).is_ok(), documented, "{case:?}");
        }
    }
}
