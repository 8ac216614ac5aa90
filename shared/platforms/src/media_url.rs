//! A post's media URL, which a user supplies and this process may fetch (YouTube uploads the
//! bytes itself): only https to public addresses unless the operator says otherwise, every
//! redirect checked again, a size cap and a timeout. Without it a media URL could make the
//! publisher read its own network (cloud metadata, the database, internal services) and hand
//! the answer to a platform.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use lifeline_kit::config::{ConfigError, Env};

/// `LIFELINE_MEDIA_ALLOW_HTTP`: plain-http media URLs (development only).
const ALLOW_HTTP: &str = "LIFELINE_MEDIA_ALLOW_HTTP";
/// `LIFELINE_MEDIA_ALLOW_HOSTS`: hosts allowed although they are, or resolve to, private
/// addresses (the simulator in development, an internal media store).
const ALLOW_HOSTS: &str = "LIFELINE_MEDIA_ALLOW_HOSTS";
/// Redirects followed at most; CDNs use one or two.
const MAX_REDIRECTS: usize = 5;

/// What media URLs may point at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaPolicy {
    pub allow_http: bool,
    /// Lower-case host names or IP addresses exempt from the public-address rule.
    pub allow_hosts: Vec<String>,
}

impl MediaPolicy {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let allow_http = env.bool_or(ALLOW_HTTP, false)?;
        let mut allow_hosts = Vec::new();
        for host in env.string_or(ALLOW_HOSTS, "").split(',').map(str::trim) {
            if host.is_empty() {
                continue;
            }
            if host.contains(['/', ':', ' ']) && host.parse::<IpAddr>().is_err() {
                return Err(env.invalid(
                    ALLOW_HOSTS,
                    format!("{host:?} is not a host name or IP address (no scheme, port or path)"),
                ));
            }
            allow_hosts.push(host.to_ascii_lowercase());
        }
        Ok(MediaPolicy { allow_http, allow_hosts })
    }

    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.allow_hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    /// Checks what can be checked without the network: the scheme, and a host written as an
    /// address. Host names are checked when they are resolved ([`MediaFetcher`]).
    pub fn check(&self, url: &url::Url) -> Result<(), String> {
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => return Err("media URLs must be https".to_owned()),
            other => return Err(format!("media URLs must be https, not {other}")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("media URLs must not carry credentials".to_owned());
        }
        let host = match url.host() {
            None => return Err("media URLs need a host".to_owned()),
            Some(host) => host,
        };
        let raw = host.to_string();
        if self.host_allowed(&raw) {
            return Ok(());
        }
        let ip = match host {
            url::Host::Ipv4(ip) => IpAddr::V4(ip),
            url::Host::Ipv6(ip) => IpAddr::V6(ip),
            url::Host::Domain(name) => {
                if name.eq_ignore_ascii_case("localhost") || name.ends_with(".localhost") {
                    return Err(format!("media host {name} is this machine"));
                }
                return Ok(());
            }
        };
        if is_public(ip) {
            Ok(())
        } else {
            Err(format!("media host {raw} is a private, loopback or link-local address"))
        }
    }
}

/// Whether `ip` is an address on the public internet: not loopback, private, link-local,
/// carrier-grade NAT, multicast, documentation, benchmarking or reserved, and not such an
/// address wrapped in IPv6.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0];
            if nat64 {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return is_public_v4(Ipv4Addr::new(a, b, c, d));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || s[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible, deprecated
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

/// Why a media download failed: the URL is not allowed (permanent), or the fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("{0}")]
    NotAllowed(String),
    #[error("media is over {0} bytes")]
    TooBig(usize),
    /// The media host answered this status.
    #[error("media URL answered {0}")]
    Status(reqwest::StatusCode),
    #[error("the media URL could not be fetched")]
    Unreachable,
    #[error("the media download broke off")]
    BrokeOff,
}

/// Downloaded media.
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
}

/// Fetches media under a [`MediaPolicy`]. Redirects are followed here, one hop at a time, so
/// that each target is checked; host names resolve through [`PublicResolver`], so a name that
/// points at a private address is refused at connect time, after the same lookup the
/// connection uses (no second lookup to rebind).
#[derive(Clone)]
pub struct MediaFetcher {
    policy: Arc<MediaPolicy>,
    client: reqwest::Client,
}

impl MediaFetcher {
    pub fn new(policy: MediaPolicy, timeout: Duration) -> Result<Self, reqwest::Error> {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(PublicResolver { policy: policy.clone() }))
            .user_agent(concat!("lifeline/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(MediaFetcher { policy, client })
    }

    pub fn policy(&self) -> &MediaPolicy {
        &self.policy
    }

    /// Downloads `url`, refusing more than `max_bytes`. It never sends a token.
    pub async fn fetch(&self, url: &str, max_bytes: usize) -> Result<Fetched, MediaError> {
        let mut url =
            url::Url::parse(url).map_err(|e| MediaError::NotAllowed(format!("bad URL: {e}")))?;
        let mut hops = 0;
        let mut resp = loop {
            self.policy.check(&url).map_err(MediaError::NotAllowed)?;
            let resp =
                self.client.get(url.clone()).send().await.map_err(
                    |e| match refused_by_resolver(&e) {
                        Some(why) => MediaError::NotAllowed(why),
                        None => MediaError::Unreachable,
                    },
                )?;
            if !resp.status().is_redirection() {
                break resp;
            }
            hops += 1;
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or(MediaError::Status(resp.status()))?;
            if hops > MAX_REDIRECTS {
                return Err(MediaError::NotAllowed(format!("more than {MAX_REDIRECTS} redirects")));
            }
            url = url
                .join(location)
                .map_err(|e| MediaError::NotAllowed(format!("bad redirect: {e}")))?;
        };
        if !resp.status().is_success() {
            return Err(MediaError::Status(resp.status()));
        }
        if resp.content_length().is_some_and(|n| n > max_bytes as u64) {
            return Err(MediaError::TooBig(max_bytes));
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|_| MediaError::BrokeOff)? {
            if bytes.len() + chunk.len() > max_bytes {
                return Err(MediaError::TooBig(max_bytes));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Fetched { bytes, content_type })
    }
}

/// The resolver's refusal, found in a request error's sources.
fn refused_by_resolver(e: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(refused) = err.downcast_ref::<PrivateHost>() {
            return Some(refused.to_string());
        }
        source = err.source();
    }
    None
}

#[derive(Debug, thiserror::Error)]
#[error("media host {0} resolves only to private, loopback or link-local addresses")]
struct PrivateHost(String);

/// Resolves host names like the system does, then keeps only public addresses (all of them
/// for a host the policy allows).
struct PublicResolver {
    policy: Arc<MediaPolicy>,
}

impl reqwest::dns::Resolve for PublicResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = policy.host_allowed(&host);
            let kept: Vec<SocketAddr> =
                all.into_iter().filter(|a| allowed || is_public(a.ip())).collect();
            if kept.is_empty() {
                return Err(Box::new(PrivateHost(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
#[path = "media_url_tests.rs"]
mod tests;
