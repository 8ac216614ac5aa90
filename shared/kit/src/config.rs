//! Typed configuration from environment variables: each value has its default in one place and
//! is validated at start, so a bad value stops the service with the variable's name.

use std::{fmt::Display, net::SocketAddr, str::FromStr, time::Duration};

use secrecy::SecretString;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid value for {name}: {reason}")]
    Invalid { name: String, reason: String },
    #[error("{name} is required: {hint}")]
    Missing { name: String, hint: String },
}

type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Reads variables from a source (the process environment, or a map in tests).
#[derive(Clone)]
pub struct Env {
    lookup: std::sync::Arc<Lookup>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Env")
    }
}

impl Env {
    pub fn process() -> Self {
        Env { lookup: std::sync::Arc::new(|k| std::env::var(k).ok()) }
    }

    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let map: std::collections::HashMap<String, String> =
            pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        Env { lookup: std::sync::Arc::new(move |k| map.get(k).cloned()) }
    }

    /// The raw value; an empty value counts as unset.
    pub fn raw(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    pub fn parse_or<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.raw(name) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|e: T::Err| ConfigError::Invalid {
                name: name.to_owned(),
                reason: format!("{v:?}: {e}"),
            }),
        }
    }

    pub fn string_or(&self, name: &str, default: &str) -> String {
        self.raw(name).unwrap_or_else(|| default.to_owned())
    }

    pub fn required(&self, name: &str, hint: &str) -> Result<String, ConfigError> {
        self.raw(name)
            .ok_or_else(|| ConfigError::Missing { name: name.to_owned(), hint: hint.to_owned() })
    }

    pub fn secret(&self, name: &str, hint: &str) -> Result<SecretString, ConfigError> {
        self.required(name, hint).map(SecretString::from)
    }

    /// A duration written as `250ms`, `30s`, `5m`, `2h` or `7d`.
    pub fn duration_or(&self, name: &str, default: Duration) -> Result<Duration, ConfigError> {
        match self.raw(name) {
            None => Ok(default),
            Some(v) => parse_duration(v.trim()).ok_or_else(|| ConfigError::Invalid {
                name: name.to_owned(),
                reason: format!("{v:?} is not a duration like 250ms, 30s, 5m, 2h or 7d"),
            }),
        }
    }

    pub fn invalid(&self, name: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid { name: name.to_owned(), reason: reason.into() }
    }
}

pub fn parse_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return None,
    };
    // try_from rejects values too large for a Duration instead of panicking.
    Duration::try_from_secs_f64(secs).ok()
}

/// What every service needs: where NATS and Postgres are, where to listen, how to log.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    pub service: &'static str,
    pub nats_url: String,
    pub database_url: String,
    pub http_addr: SocketAddr,
    /// Root of every subject (`lifeline`); tests use a unique root each.
    pub subject_root: String,
    /// Prefix of the stream names (`LIFELINE` gives `LIFELINE_EVENTS` and `LIFELINE_DLQ`).
    pub stream_prefix: String,
    pub stream_replicas: usize,
    pub db_max_connections: u32,
    /// A unique name for this replica, used as lease owner.
    pub instance_id: String,
}

impl CommonConfig {
    pub fn from_env(
        env: &Env,
        service: &'static str,
        default_port: u16,
    ) -> Result<Self, ConfigError> {
        let http_addr =
            env.parse_or("LIFELINE_HTTP_ADDR", SocketAddr::from(([127, 0, 0, 1], default_port)))?;
        let nats_url = env.string_or("NATS_URL", "nats://127.0.0.1:4222");
        let database_url =
            env.string_or("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lifeline");
        if !database_url.starts_with("postgres://") && !database_url.starts_with("postgresql://") {
            return Err(env.invalid("DATABASE_URL", "must start with postgres:// or postgresql://"));
        }
        let subject_root = env.string_or("LIFELINE_SUBJECT_ROOT", "lifeline");
        if subject_root.is_empty()
            || !subject_root.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(
                env.invalid("LIFELINE_SUBJECT_ROOT", "use letters, digits, '-' or '_' only")
            );
        }
        let stream_prefix = env.string_or("LIFELINE_STREAM_PREFIX", "LIFELINE");
        let stream_replicas: usize = env.parse_or("LIFELINE_STREAM_REPLICAS", 1)?;
        if !(1..=5).contains(&stream_replicas) {
            return Err(env.invalid("LIFELINE_STREAM_REPLICAS", "must be between 1 and 5"));
        }
        let db_max_connections: u32 = env.parse_or("LIFELINE_DB_MAX_CONNECTIONS", 10)?;
        if db_max_connections == 0 {
            return Err(env.invalid("LIFELINE_DB_MAX_CONNECTIONS", "must be at least 1"));
        }
        let instance_id = env
            .raw("LIFELINE_INSTANCE_ID")
            .or_else(|| env.raw("HOSTNAME"))
            .unwrap_or_else(|| format!("{service}-{}", uuid::Uuid::new_v4().simple()));
        Ok(CommonConfig {
            service,
            nats_url,
            database_url,
            http_addr,
            subject_root,
            stream_prefix,
            stream_replicas,
            db_max_connections,
            instance_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_unset() {
        let c =
            CommonConfig::from_env(&Env::from_pairs([("LIFELINE_INSTANCE_ID", "a")]), "svc", 8080)
                .expect("defaults are valid");
        assert_eq!(c.http_addr.port(), 8080);
        assert_eq!(c.subject_root, "lifeline");
        assert_eq!(c.instance_id, "a");
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let err =
            CommonConfig::from_env(&Env::from_pairs([("LIFELINE_HTTP_ADDR", "nope")]), "svc", 1)
                .expect_err("invalid address");
        assert!(err.to_string().contains("LIFELINE_HTTP_ADDR"), "{err}");
        let err =
            CommonConfig::from_env(&Env::from_pairs([("LIFELINE_STREAM_REPLICAS", "9")]), "svc", 1)
                .expect_err("too many replicas");
        assert!(err.to_string().contains("LIFELINE_STREAM_REPLICAS"), "{err}");
        let err =
            CommonConfig::from_env(&Env::from_pairs([("DATABASE_URL", "mysql://x")]), "svc", 1)
                .expect_err("wrong scheme");
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("x5s"), None);
        assert_eq!(parse_duration("99999999999999999999999d"), None);
        assert_eq!(parse_duration("-5s"), None);
    }
}
