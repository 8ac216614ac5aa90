//! `Connectors::from_env`: which platforms are configured, and the simulator host prefixes
//! (a contract with platform-sim).

use lifeline_kit::{config::Env, Platform};
use lifeline_platforms::Connectors;

fn env(extra: &[(&str, &str)]) -> Env {
    let mut pairs: Vec<(String, String)> = vec![
        ("LIFELINE_PUBLIC_URL".into(), "http://gw.test".into()),
        ("LIFELINE_SIM_URL".into(), "http://sim.test:8090".into()),
    ];
    for p in ["X", "LINKEDIN", "INSTAGRAM", "FACEBOOK", "YOUTUBE", "TIKTOK", "THREADS"] {
        pairs.push((format!("LIFELINE_{p}_CLIENT_ID"), format!("{p}-id")));
        pairs.push((format!("LIFELINE_{p}_CLIENT_SECRET"), format!("{p}-secret")));
    }
    pairs.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    Env::from_pairs(pairs)
}

#[test]
fn every_platform_authorizes_through_its_simulator_prefix() {
    let connectors = Connectors::from_env(&env(&[])).expect("config");
    let expected = [
        (Platform::LinkedIn, "http://sim.test:8090/linkedin/www/oauth/v2/authorization?", false),
        (Platform::Instagram, "http://sim.test:8090/instagram/api/oauth/authorize?", false),
        (Platform::Facebook, "http://sim.test:8090/facebook/www/v21.0/dialog/oauth?", false),
        (Platform::YouTube, "http://sim.test:8090/google/accounts/o/oauth2/v2/auth?", true),
        (Platform::TikTok, "http://sim.test:8090/tiktok/www/v2/auth/authorize/?", true),
        (Platform::Threads, "http://sim.test:8090/threads/www/oauth/authorize?", false),
    ];
    for (platform, prefix, pkce) in expected {
        let c = connectors.get(platform).unwrap_or_else(|| panic!("{platform} configured"));
        let start = c.authorize("st4te");
        let url = start.url.as_str();
        assert!(url.starts_with(prefix), "{platform}: {url}");
        assert!(url.contains("state=st4te"), "{platform}: {url}");
        let callback = format!("gw.test%2Foauth%2Fcallback%2F{}", platform.as_str());
        assert!(url.contains(&callback), "{platform}: {url}");
        assert_eq!(start.pkce_verifier.is_some(), pkce, "{platform}");
        assert_eq!(url.contains("code_challenge_method=S256"), pkce, "{platform}: {url}");
    }
    let youtube = connectors.get(Platform::YouTube).expect("youtube").authorize("s");
    assert!(youtube.url.as_str().contains("access_type=offline"));
    assert!(youtube.url.as_str().contains("prompt=consent"));
    assert_eq!(connectors.platforms().count(), 7);
}

#[test]
fn a_platform_without_client_id_is_not_configured_and_hosts_can_be_overridden() {
    let env = Env::from_pairs([
        ("LIFELINE_LINKEDIN_CLIENT_ID", "id"),
        ("LIFELINE_LINKEDIN_WWW_URL", "https://li.example/prefix"),
    ]);
    let connectors = Connectors::from_env(&env).expect("config");
    assert_eq!(connectors.platforms().collect::<Vec<_>>(), vec![Platform::LinkedIn]);
    let url = connectors.get(Platform::LinkedIn).expect("linkedin").authorize("s").url;
    assert!(url.as_str().starts_with("https://li.example/prefix/oauth/v2/authorization?"));
}

#[test]
fn a_bad_host_url_names_its_variable() {
    let err = Connectors::from_env(&env(&[("LIFELINE_TIKTOK_OPEN_URL", "not a url")]))
        .err()
        .expect("invalid");
    assert!(err.to_string().contains("LIFELINE_TIKTOK_OPEN_URL"), "{err}");
}

#[test]
fn platforms_that_need_the_app_secret_do_not_start_without_it() {
    for platform in ["INSTAGRAM", "THREADS", "FACEBOOK", "TIKTOK"] {
        let env = Env::from_pairs([
            (format!("LIFELINE_{platform}_CLIENT_ID"), "app-id".to_owned()),
            ("LIFELINE_X_CLIENT_ID".to_owned(), "x-id".to_owned()),
        ]);
        let err = Connectors::from_env(&env).err().unwrap_or_else(|| panic!("{platform} started"));
        let var = format!("LIFELINE_{platform}_CLIENT_SECRET");
        assert!(
            matches!(&err, lifeline_kit::config::ConfigError::Missing { name, .. } if *name == var),
            "{platform}: {err}"
        );
        assert!(err.to_string().contains(&var), "{err}");
        // With the secret it starts.
        let env = Env::from_pairs([
            (format!("LIFELINE_{platform}_CLIENT_ID"), "app-id"),
            (format!("LIFELINE_{platform}_CLIENT_SECRET"), "app-secret"),
        ]);
        assert_eq!(Connectors::from_env(&env).expect("configured").platforms().count(), 1);
    }
}
