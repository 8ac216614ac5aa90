//! Typed configuration from environment variables: each value has its default in one place and
//! is validated at start, so a bad value stops the service with the variable's name.

use std::{
    collections::BTreeSet,
    fmt::Display,
    net::SocketAddr,
    ops::RangeInclusive,
    path::PathBuf,
    str::FromStr,
    sync::{Arc, Mutex},
    time::Duration,
};

use secrecy::SecretString;

mod connections;
use connections::database_url;
pub use connections::{redact_url, NatsAuth, NatsConfig, NatsTls};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid value for {name}: {reason}")]
    Invalid { name: String, reason: String },
    #[error("{name} is required: {hint}")]
    Missing { name: String, hint: String },
}

type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;
type Names = dyn Fn() -> Vec<String> + Send + Sync;

/// Reads variables from a source (the process environment, or a map in tests) and remembers
/// every name it was asked for, so that a variable nobody reads (a typo, or a manifest that
/// drifted from the code) can be reported: see [`Env::unknown`].
#[derive(Clone)]
pub struct Env {
    lookup: Arc<Lookup>,
    names: Arc<Names>,
    asked: Arc<Mutex<BTreeSet<String>>>,
}

/// The prefix of the variables Lifeline owns; any other variable is left alone.
pub const PREFIX: &str = "LIFELINE_";

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Env")
    }
}

impl Env {
    pub fn process() -> Self {
        Env {
            lookup: Arc::new(|k| std::env::var(k).ok()),
            names: Arc::new(|| {
                std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()).collect()
            }),
            asked: Arc::default(),
        }
    }

    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let map: Arc<std::collections::HashMap<String, String>> =
            Arc::new(pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect());
        let keys = map.clone();
        Env {
            lookup: Arc::new(move |k| map.get(k).cloned()),
            names: Arc::new(move || keys.keys().cloned().collect()),
            asked: Arc::default(),
        }
    }

    /// The raw value; an empty value counts as unset.
    pub fn raw(&self, name: &str) -> Option<String> {
        self.declare([name]);
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    /// Marks variables as known although this configuration did not read them (they are read
    /// only under a condition that does not hold, e.g. a disabled platform's settings).
    pub fn declare<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        if let Ok(mut asked) = self.asked.lock() {
            asked.extend(names.into_iter().map(str::to_owned));
        }
    }

    /// The `LIFELINE_*` variables that are set but that nothing has asked for, sorted.
    pub fn unknown(&self) -> Vec<String> {
        let asked = self.asked.lock().map(|a| a.clone()).unwrap_or_default();
        let mut unknown: Vec<String> = (self.names)()
            .into_iter()
            .filter(|n| n.starts_with(PREFIX) && !asked.contains(n))
            .collect();
        unknown.sort();
        unknown.dedup();
        unknown
    }

    /// A value that must lie in `range` (`default` when unset).
    pub fn parse_in<T>(
        &self,
        name: &str,
        default: T,
        range: RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display,
        T::Err: Display,
    {
        let value = self.parse_or(name, default)?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(self
                .invalid(name, format!("must be between {} and {}", range.start(), range.end())))
        }
    }

    /// A duration that must lie in `range` (`default` when unset).
    pub fn duration_in(
        &self,
        name: &str,
        default: Duration,
        range: RangeInclusive<Duration>,
    ) -> Result<Duration, ConfigError> {
        let value = self.duration_or(name, default)?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(self.invalid(
                name,
                format!(
                    "must be between {} and {}",
                    format_duration(*range.start()),
                    format_duration(*range.end())
                ),
            ))
        }
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    pub fn bool_or(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.raw(name).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) => match v.as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(self.invalid(name, format!("{v:?} is not true or false"))),
            },
        }
    }

    /// A path to a file that must exist and be readable now, so that a wrong mount is reported
    /// at start rather than at the first connection.
    pub fn file(&self, name: &str) -> Result<Option<PathBuf>, ConfigError> {
        let Some(path) = self.raw(name).map(|v| PathBuf::from(v.trim())) else { return Ok(None) };
        match std::fs::File::open(&path) {
            Ok(_) => Ok(Some(path)),
            Err(e) => Err(self.invalid(name, format!("cannot read {}: {e}", path.display()))),
        }
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

/// A duration in the unit that writes it shortest (`10m`, `90s`, `250ms`), for messages.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    let units = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1_000, "s")];
    for (size, unit) in units {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// A lease must outlive any platform call made under it, or a slow call could overlap with the
/// next holder's: `lease` (read from `name`) is at least twice `LIFELINE_PLATFORM_TIMEOUT`.
pub fn lease_outlives_calls(
    env: &Env,
    name: &str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let lease = env.duration_or(name, default)?;
    let timeout = platform_timeout(env)?;
    if lease < timeout.saturating_mul(2) {
        return Err(env.invalid(
            name,
            format!(
                "must be at least twice LIFELINE_PLATFORM_TIMEOUT ({})",
                format_duration(timeout)
            ),
        ));
    }
    Ok(lease)
}

/// `LIFELINE_PLATFORM_TIMEOUT`: how long one platform call may take (15s).
pub fn platform_timeout(env: &Env) -> Result<Duration, ConfigError> {
    env.duration_or("LIFELINE_PLATFORM_TIMEOUT", Duration::from_secs(15))
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
    pub nats: NatsConfig,
    /// `DATABASE_URL`; a secret, since it usually carries the password.
    pub database_url: SecretString,
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
        let nats = NatsConfig::from_env(env)?;
        let database_url = database_url(env)?;
        let subject_root = env.string_or("LIFELINE_SUBJECT_ROOT", "lifeline");
        if subject_root.is_empty()
            || !subject_root.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(
                env.invalid("LIFELINE_SUBJECT_ROOT", "use letters, digits, '-' or '_' only")
            );
        }
        let stream_prefix = env.string_or("LIFELINE_STREAM_PREFIX", "LIFELINE");
        let stream_replicas = env.parse_in("LIFELINE_STREAM_REPLICAS", 1, 1..=5)?;
        let db_max_connections = env.parse_in("LIFELINE_DB_MAX_CONNECTIONS", 10, 1..=1000)?;
        let instance_id = env
            .raw("LIFELINE_INSTANCE_ID")
            .or_else(|| env.raw("HOSTNAME"))
            .unwrap_or_else(|| format!("{service}-{}", uuid::Uuid::new_v4().simple()));
        // Read by the telemetry set-up before the configuration is parsed.
        env.declare(["LIFELINE_LOG_FORMAT"]);
        Ok(CommonConfig {
            service,
            nats,
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

    #[test]
    fn unknown_variables_are_those_nobody_asked_for() {
        let env = Env::from_pairs([
            ("LIFELINE_STREAM_REPLICAS", "3"),
            ("LIFELINE_STREAM_REPLICAZ", "3"),
            ("LIFELINE_DECLARED", "x"),
            ("HOME", "/root"),
        ]);
        CommonConfig::from_env(&env, "svc", 1).expect("valid");
        env.declare(["LIFELINE_DECLARED"]);
        assert_eq!(env.unknown(), vec!["LIFELINE_STREAM_REPLICAZ".to_owned()]);
    }

    #[test]
    fn ranges_are_checked() {
        let env = Env::from_pairs([("N", "0"), ("D", "2h")]);
        let err = env.parse_in("N", 5, 1..=10).expect_err("out of range");
        assert_eq!(err.to_string(), "invalid value for N: must be between 1 and 10");
        let err = env
            .duration_in(
                "D",
                Duration::from_secs(1),
                Duration::from_secs(1)..=Duration::from_secs(3600),
            )
            .expect_err("out of range");
        assert_eq!(err.to_string(), "invalid value for D: must be between 1s and 1h");
        assert_eq!(env.parse_in("UNSET", 5, 1..=10).expect("default"), 5);
    }
}
