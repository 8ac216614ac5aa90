//! Tests of `media_url`: which addresses are public, what the policy refuses without the
//! network, and fetches through a real local server that redirects.

use std::{net::IpAddr, str::FromStr, time::Duration};

use lifeline_kit::config::Env;
use reqwest::dns::Resolve as _;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn only_addresses_on_the_public_internet_are_public() {
    for public in ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"] {
        assert!(is_public(ip(public)), "{public}");
    }
    for private in [
        "127.0.0.1",
        "127.0.0.2",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.1",
        "192.0.2.1",
        "198.18.0.1",
        "240.0.0.1",
        "::1",
        "::",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "ff02::1",
        "2001:db8::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",
        "::127.0.0.1",
    ] {
        assert!(!is_public(ip(private)), "{private}");
    }
}

fn url(s: &str) -> url::Url {
    url::Url::parse(s).unwrap()
}

#[test]
fn production_policy_takes_https_to_public_hosts_only() {
    let strict = MediaPolicy::default();
    assert_eq!(strict.check(&url("https://cdn.example.com/v.mp4")), Ok(()));
    assert_eq!(strict.check(&url("https://93.184.216.34/v.mp4")), Ok(()));
    let refused = |u: &str| strict.check(&url(u)).unwrap_err();
    assert_eq!(refused("http://cdn.example.com/v.mp4"), "media URLs must be https");
    assert_eq!(refused("ftp://cdn.example.com/v.mp4"), "media URLs must be https, not ftp");
    assert!(refused("https://127.0.0.1/v.mp4").contains("private, loopback or link-local"));
    assert!(refused("https://169.254.169.254/latest/meta-data").contains("169.254.169.254"));
    assert!(refused("https://10.0.0.5:5432/").contains("10.0.0.5"));
    assert!(refused("https://[::1]/v.mp4").contains("[::1]"));
    assert!(refused("https://[::ffff:7f00:1]/v.mp4").contains("private"));
    assert!(refused("https://localhost/v.mp4").contains("this machine"));
    assert!(refused("https://media.localhost/v.mp4").contains("this machine"));
    assert!(refused("https://user:pw@cdn.example.com/v.mp4").contains("credentials"));
}

#[test]
fn development_policy_allows_http_and_named_hosts_only() {
    let dev = MediaPolicy { allow_http: true, allow_hosts: vec!["127.0.0.1".into()] };
    assert_eq!(dev.check(&url("http://127.0.0.1:8090/_sim/media/sample.mp4")), Ok(()));
    assert!(dev.check(&url("http://127.0.0.2:8090/")).is_err(), "another loopback address");
    assert!(dev.check(&url("http://10.0.0.1/")).is_err());
}

#[test]
fn the_policy_is_read_from_the_environment_and_bad_hosts_name_the_variable() {
    let env = Env::from_pairs([
        ("LIFELINE_MEDIA_ALLOW_HTTP", "true"),
        ("LIFELINE_MEDIA_ALLOW_HOSTS", " Platform-Sim , 127.0.0.1,::1"),
    ]);
    let policy = MediaPolicy::from_env(&env).unwrap();
    assert!(policy.allow_http);
    assert_eq!(policy.allow_hosts, ["platform-sim", "127.0.0.1", "::1"]);
    assert_eq!(
        MediaPolicy::from_env(&Env::from_pairs::<_, &str, &str>([])).unwrap(),
        MediaPolicy::default()
    );
    let env = Env::from_pairs([("LIFELINE_MEDIA_ALLOW_HOSTS", "http://platform-sim:8090")]);
    let err = MediaPolicy::from_env(&env).unwrap_err().to_string();
    assert!(err.contains("LIFELINE_MEDIA_ALLOW_HOSTS"), "{err}");
    let env = Env::from_pairs([("LIFELINE_MEDIA_ALLOW_HTTP", "sometimes")]);
    let err = MediaPolicy::from_env(&env).unwrap_err().to_string();
    assert!(err.contains("LIFELINE_MEDIA_ALLOW_HTTP"), "{err}");
}

#[tokio::test]
async fn a_name_that_resolves_only_to_private_addresses_is_refused_at_lookup() {
    let resolver = PublicResolver { policy: Arc::new(MediaPolicy::default()) };
    let name = reqwest::dns::Name::from_str("localhost").unwrap();
    let err = match resolver.resolve(name).await {
        Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
        Err(e) => e.to_string(),
    };
    assert_eq!(
        err,
        "media host localhost resolves only to private, loopback or link-local addresses"
    );
    let allowing = PublicResolver {
        policy: Arc::new(MediaPolicy { allow_http: false, allow_hosts: vec!["localhost".into()] }),
    };
    let name = reqwest::dns::Name::from_str("localhost").unwrap();
    let addrs: Vec<_> = allowing.resolve(name).await.unwrap().collect();
    assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty(), "{addrs:?}");
}

/// A one-route-per-path HTTP server on 127.0.0.1; returns its port and how many requests it
/// answered so far.
async fn server() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0; 4096];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).into_owned();
                let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let answer = match path.as_str() {
                    "/video" => "HTTP/1.1 200 OK\r\ncontent-type: video/mp4\r\ncontent-length: 5\r\nconnection: close\r\n\r\nvideo".to_owned(),
                    "/big" => "HTTP/1.1 200 OK\r\ncontent-length: 1000\r\nconnection: close\r\n\r\n".to_owned(),
                    "/hop" => "HTTP/1.1 302 Found\r\nlocation: /video\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
                    "/to-metadata" => "HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/latest/meta-data/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
                    "/to-other-loopback" => format!("HTTP/1.1 301 Moved\r\nlocation: http://127.0.0.2:{port}/video\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"),
                    "/to-localhost" => format!("HTTP/1.1 307 Moved\r\nlocation: http://localhost:{port}/video\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"),
                    "/loop" => "HTTP/1.1 302 Found\r\nlocation: /loop\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
                    _ => "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
                };
                let _ = sock.write_all(answer.as_bytes()).await;
            });
        }
    });
    (port, served)
}

fn dev_fetcher() -> MediaFetcher {
    let policy = MediaPolicy { allow_http: true, allow_hosts: vec!["127.0.0.1".into()] };
    MediaFetcher::new(policy, Duration::from_secs(5)).unwrap()
}

#[tokio::test]
async fn every_redirect_is_checked_again() {
    let (port, served) = server().await;
    let fetcher = dev_fetcher();
    let base = format!("http://127.0.0.1:{port}");

    let got = fetcher.fetch(&format!("{base}/hop"), 100).await.unwrap();
    assert_eq!(
        (got.bytes.as_slice(), got.content_type.as_deref()),
        (&b"video"[..], Some("video/mp4"))
    );
    let before = served.load(std::sync::atomic::Ordering::SeqCst);

    for (path, why) in [
        ("/to-metadata", "169.254.169.254"),
        ("/to-other-loopback", "127.0.0.2"),
        ("/to-localhost", "this machine"),
    ] {
        match fetcher.fetch(&format!("{base}{path}"), 100).await {
            Err(MediaError::NotAllowed(reason)) => {
                assert!(reason.contains(why), "{path}: {reason}")
            }
            Err(other) => panic!("{path}: {other:?}"),
            Ok(_) => panic!("{path}: fetched"),
        }
    }
    // One request each for the three redirects, none for where they pointed.
    assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst) - before, 3);

    match fetcher.fetch(&format!("{base}/loop"), 100).await {
        Err(MediaError::NotAllowed(reason)) => assert!(reason.contains("redirects"), "{reason}"),
        other => panic!("{:?}", other.map(|f| f.bytes)),
    }
    assert!(matches!(
        fetcher.fetch(&format!("{base}/big"), 100).await,
        Err(MediaError::TooBig(100))
    ));
    assert!(matches!(
        fetcher.fetch(&format!("{base}/missing"), 100).await,
        Err(MediaError::Status(s)) if s == reqwest::StatusCode::NOT_FOUND
    ));
}

#[tokio::test]
async fn the_production_policy_never_connects_to_this_machine() {
    let (port, served) = server().await;
    let strict = MediaFetcher::new(MediaPolicy::default(), Duration::from_secs(5)).unwrap();
    for u in [format!("https://127.0.0.1:{port}/video"), format!("http://127.0.0.1:{port}/video")] {
        assert!(matches!(strict.fetch(&u, 100).await, Err(MediaError::NotAllowed(_))), "{u}");
    }
    assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 0);
}
