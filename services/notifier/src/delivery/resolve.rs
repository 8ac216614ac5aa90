//! DNS checked at send time. A channel's URL was checked when it was created, but its name can
//! later resolve to this machine or a private network (DNS rebinding). The delivery client's
//! resolver is [`CheckingResolver`]: it resolves the name for every new connection, refuses
//! it by [`target::allowed_addrs`], and hands the connector exactly the addresses it checked,
//! so the check and the connection cannot disagree. A URL whose host is an address never
//! reaches a resolver: [`check_url`] checks it before the request.

use std::{sync::Arc, time::Duration};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

use crate::channels::target::{self, TargetError};

/// Why a send was refused before connecting, in words for the delivery log (never the URL: a
/// Slack URL is a credential; the host and address are not).
#[derive(Debug, thiserror::Error)]
#[error("refused: {host} {reason} (LIFELINE_NOTIFY_ALLOW_PRIVATE_TARGETS is off)")]
pub(crate) struct Refused {
    host: String,
    reason: String,
}

impl Refused {
    fn new(host: &str, e: &TargetError) -> Refused {
        let reason = match e {
            TargetError::Private(ip) => {
                format!("leads to a loopback, private or link-local address ({ip})")
            }
            other => other.to_string(),
        };
        Refused { host: host.to_owned(), reason }
    }
}

/// The delivery client's resolver.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CheckingResolver {
    pub allow_private: bool,
}

impl Resolve for CheckingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            // Port 0: the connector puts the URL's port on every address.
            match target::resolve_allowed(&host, 0, allow).await {
                Ok(addrs) => Ok(Box::new(addrs.into_iter()) as Addrs),
                Err(TargetError::Unresolvable) => Err(format!("{host} does not resolve").into()),
                Err(e) => Err(Box::new(Refused::new(&host, &e)) as _),
            }
        })
    }
}

/// The client deliveries are sent with: no redirects, and names resolved by
/// [`CheckingResolver`].
pub(crate) fn client(allow_private: bool) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("Lifeline-Notifier/1")
        .dns_resolver(Arc::new(CheckingResolver { allow_private }))
        // Pooled connections were made to checked addresses; a short idle life bounds how long
        // one outlives a change of the name's answer.
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default()
}

/// Checks a URL before its request: parsed, and an address in it (which no resolver sees)
/// allowed. A name is checked by the resolver as the connection is made.
pub(crate) fn check_url(raw: &str, allow_private: bool) -> Result<Url, String> {
    let url = target::parse_url(raw).map_err(|e| e.to_string())?;
    if let Err(e) = target::check_ip_literal(&url, allow_private) {
        let host = url.host_str().unwrap_or_default();
        return Err(Refused::new(host, &e).to_string());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    /// For tests: what the resolver answers for `host`.
    async fn resolve(host: &str, allow_private: bool) -> Result<Vec<SocketAddr>, String> {
        let name: Name = host.parse().map_err(|_| "bad name".to_owned())?;
        CheckingResolver { allow_private }
            .resolve(name)
            .await
            .map(|a| a.collect())
            .map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn a_name_that_leads_to_this_machine_is_refused_at_send_time() {
        let refused = resolve("localhost", false).await.unwrap_err();
        assert!(refused.starts_with("refused: localhost leads to a loopback"), "{refused}");
        let allowed = resolve("localhost", true).await.unwrap();
        assert!(allowed.iter().all(|a| a.ip().is_loopback()), "{allowed:?}");
    }

    #[tokio::test]
    async fn the_client_does_not_connect_to_a_refused_address() {
        // A real listener on loopback: the refusal, not a closed port, stops the request.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = tokio::spawn(async move { listener.accept().await.is_ok() });
        let e = client(false).get(format!("http://localhost:{port}/hook")).send().await;
        let e = e.unwrap_err();
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text = format!("{text}: {s}");
            source = s.source();
        }
        assert!(text.contains("refused: localhost leads to a loopback"), "{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!accepted.is_finished(), "no connection was made");
        accepted.abort();
    }

    #[test]
    fn an_address_in_the_url_is_refused_before_the_request() {
        let e = check_url("http://10.0.0.7:8080/hook", false).unwrap_err();
        assert!(e.contains("refused: 10.0.0.7 leads to a loopback"), "{e}");
        assert!(check_url("http://10.0.0.7:8080/hook", true).is_ok());
        assert!(check_url("https://hooks.example/x", false).is_ok());
    }
}
