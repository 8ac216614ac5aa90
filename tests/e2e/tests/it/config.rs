//! Invalid configuration stops a service at start with the variable's name in the message.

use lifeline_kit::config::Env;

fn valid() -> Vec<(&'static str, String)> {
    vec![
        ("LIFELINE_JWT_SECRET", "a-jwt-secret-that-is-long-enough-0123".into()),
        ("LIFELINE_VAULT_KEYS", "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into()),
    ]
}

fn with(overrides: &[(&'static str, &str)]) -> Env {
    let mut pairs = valid();
    for (k, v) in overrides {
        pairs.retain(|(key, _)| key != k);
        pairs.push((k, (*v).to_owned()));
    }
    Env::from_pairs(pairs)
}

fn errors(env: &Env) -> Vec<String> {
    [
        auth_gateway::Config::from_env(env).err().map(|e| e.to_string()),
        publisher::Config::from_env(env).err().map(|e| e.to_string()),
        token_refresher::Config::from_env(env).err().map(|e| e.to_string()),
        notifier::Config::from_env(env).err().map(|e| e.to_string()),
    ]
    .into_iter()
    .flatten()
    .collect()
}

#[test]
fn a_valid_environment_starts_every_service() {
    assert!(errors(&with(&[])).is_empty(), "{:?}", errors(&with(&[])));
}

#[test]
fn every_invalid_value_names_its_variable() {
    let cases: &[(&str, &str)] = &[
        ("LIFELINE_JWT_SECRET", "short"),
        ("LIFELINE_VAULT_KEYS", "k1:not-base64!"),
        ("LIFELINE_VAULT_KEYS", "k1:AAEC"),
        ("LIFELINE_VAULT_ACTIVE_KEY", "k9"),
        ("LIFELINE_HTTP_ADDR", "localhost"),
        ("DATABASE_URL", "mysql://localhost/lifeline"),
        ("LIFELINE_STREAM_REPLICAS", "0"),
        ("LIFELINE_SUBJECT_ROOT", "lifeline.events"),
        ("LIFELINE_OAUTH_SESSION_TTL", "2d"),
        ("LIFELINE_PUBLISH_BATCH", "0"),
        ("LIFELINE_PUBLISH_LEASE", "soon"),
        ("LIFELINE_PUBLISH_LEASE", "10s"),
        ("LIFELINE_REFRESH_LEASE", "20s"),
        ("LIFELINE_PUBLISH_MAX_RETRIES", "-1"),
        ("LIFELINE_REFRESH_CONCURRENCY", "0"),
        ("LIFELINE_REFRESH_RETRY_BASE", "99999999999999999999d"),
        ("LIFELINE_PUBLIC_URL", "not a url"),
        ("LIFELINE_PLATFORM_TIMEOUT", "fast"),
        ("LIFELINE_REFRESH_RATE", "-5"),
        ("LIFELINE_X_REFRESH_CONCURRENCY", "0"),
        ("LIFELINE_TIKTOK_REFRESH_RATE", "lots"),
        ("LIFELINE_BREAKER_COOLDOWN", "1ms"),
        ("LIFELINE_BREAKER_MIN_CALLS", "0"),
        ("LIFELINE_BREAKER_FAILURE_RATIO", "1.5"),
        ("LIFELINE_EXPIRING_HORIZONS", "7d,soon"),
        ("LIFELINE_PROBE_INTERVAL", "0s"),
        ("LIFELINE_REFRESH_WRITERS", "0"),
        ("LIFELINE_NOTIFY_GRACE", "2h"),
        ("LIFELINE_NOTIFY_RETRY_SCHEDULE", "0s,soon"),
        ("LIFELINE_NOTIFY_DELIVERY_TIMEOUT", "1h"),
        ("LIFELINE_NOTIFY_CHANNEL_CONCURRENCY", "0"),
        ("LIFELINE_NOTIFY_DISABLE_AFTER", "0s"),
        ("LIFELINE_NOTIFY_ALLOW_PRIVATE_TARGETS", "maybe"),
    ];
    for (name, value) in cases {
        let errs = errors(&with(&[(name, value)]));
        assert!(!errs.is_empty(), "{name}={value} was accepted");
        assert!(errs.iter().all(|e| e.contains(name)), "{name}={value}: {errs:?}");
    }
}

#[test]
fn missing_secrets_are_named() {
    let env = Env::from_pairs([(
        "LIFELINE_VAULT_KEYS",
        "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    )]);
    let errs = errors(&env);
    assert_eq!(errs.len(), 3, "the token-refresher serves no API: {errs:?}");
    assert!(errs.iter().all(|e| e.contains("LIFELINE_JWT_SECRET")), "{errs:?}");
    let env = Env::from_pairs([("LIFELINE_JWT_SECRET", "a-jwt-secret-that-is-long-enough-0123")]);
    let errs = errors(&env);
    assert_eq!(
        errs.len(),
        4,
        "every service needs the vault key (the notifier seals channel secrets): {errs:?}"
    );
    assert!(errs.iter().all(|e| e.contains("LIFELINE_VAULT_KEYS")), "{errs:?}");
}
