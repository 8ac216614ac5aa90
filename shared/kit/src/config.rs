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

use secrecy::{ExposeSecret, SecretString};

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

/// The `sslmode` values Postgres clients know, weakest first.
const SSL_MODES: [&str; 6] = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];

/// `DATABASE_URL`, checked without ever echoing it (it usually carries a password): the scheme,
/// the `sslmode`, and that the certificate files it names can be read.
fn database_url(env: &Env) -> Result<SecretString, ConfigError> {
    const NAME: &str = "DATABASE_URL";
    let url = env.string_or(NAME, "postgres://postgres@127.0.0.1:5432/lifeline");
    if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
        return Err(env.invalid(NAME, "must start with postgres:// or postgresql://"));
    }
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    for (key, value) in query.split('&').filter_map(|kv| kv.split_once('=')) {
        match key {
            "sslmode" if !SSL_MODES.contains(&value) => {
                return Err(env.invalid(
                    NAME,
                    format!("sslmode={value} is not one of {}", SSL_MODES.join(", ")),
                ))
            }
            "sslrootcert" | "sslcert" | "sslkey" => {
                let path = percent_decode(value);
                if let Err(e) = std::fs::File::open(&path) {
                    return Err(env.invalid(NAME, format!("{key}: cannot read {path}: {e}")));
                }
            }
            _ => {}
        }
    }
    if url.parse::<sqlx::postgres::PgConnectOptions>().is_err() {
        return Err(env.invalid(NAME, "is not a valid Postgres URL (the value is not shown)"));
    }
    Ok(SecretString::from(url))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How a service reaches NATS: the servers, how it authenticates, and TLS.
#[derive(Clone)]
pub struct NatsConfig {
    /// `NATS_URL`: one URL or a comma-separated list (a cluster's seed servers).
    pub servers: Vec<String>,
    pub auth: NatsAuth,
    pub tls: NatsTls,
}

/// One of the ways a NATS server authenticates clients.
#[derive(Clone)]
pub enum NatsAuth {
    None,
    /// `LIFELINE_NATS_USER` + `LIFELINE_NATS_PASSWORD`.
    UserPassword {
        user: String,
        password: SecretString,
    },
    /// `LIFELINE_NATS_TOKEN`.
    Token(SecretString),
    /// `LIFELINE_NATS_NKEY_SEED`: an NKey user seed (`SU…`).
    NKey(SecretString),
    /// `LIFELINE_NATS_CREDS_FILE`: a `.creds` file (user JWT + NKey seed).
    CredsFile(PathBuf),
}

/// TLS towards NATS: a custom CA, a client certificate, and whether TLS is required.
#[derive(Clone, Debug, Default)]
pub struct NatsTls {
    /// `LIFELINE_NATS_TLS_CA_FILE`: PEM roots to trust instead of the built-in ones.
    pub ca_file: Option<PathBuf>,
    /// `LIFELINE_NATS_TLS_CERT_FILE` + `LIFELINE_NATS_TLS_KEY_FILE`: a client certificate.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// `LIFELINE_NATS_TLS_REQUIRED` (or a `tls://` URL): refuse a connection without TLS.
    pub required: bool,
}

impl std::fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let auth = match &self.auth {
            NatsAuth::None => "none",
            NatsAuth::UserPassword { .. } => "user/password",
            NatsAuth::Token(_) => "token",
            NatsAuth::NKey(_) => "nkey",
            NatsAuth::CredsFile(_) => "creds file",
        };
        f.debug_struct("NatsConfig")
            .field("servers", &self.servers_for_display())
            .field("auth", &auth)
            .field("tls", &self.tls)
            .finish()
    }
}

impl NatsConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        const URL: &str = "NATS_URL";
        let servers: Vec<String> = env
            .string_or(URL, "nats://127.0.0.1:4222")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if servers.is_empty() {
            return Err(env.invalid(URL, "names no server"));
        }
        for server in &servers {
            if server.parse::<async_nats::ServerAddr>().is_err() {
                return Err(env.invalid(
                    URL,
                    format!(
                        "{} is not a NATS server address (nats://host:port, tls://host:port)",
                        redact_url(server)
                    ),
                ));
            }
        }
        let user = env.raw("LIFELINE_NATS_USER");
        let password = env.raw("LIFELINE_NATS_PASSWORD").map(SecretString::from);
        let token = env.raw("LIFELINE_NATS_TOKEN").map(SecretString::from);
        let seed = env.raw("LIFELINE_NATS_NKEY_SEED").map(SecretString::from);
        let creds = env.file("LIFELINE_NATS_CREDS_FILE")?;
        let chosen = [
            user.is_some() || password.is_some(),
            token.is_some(),
            seed.is_some(),
            creds.is_some(),
        ];
        if chosen.iter().filter(|c| **c).count() > 1 {
            return Err(env.invalid(
                "LIFELINE_NATS_USER",
                "set only one of LIFELINE_NATS_USER/PASSWORD, LIFELINE_NATS_TOKEN, LIFELINE_NATS_NKEY_SEED, LIFELINE_NATS_CREDS_FILE",
            ));
        }
        let auth = match (user, password, token, seed, creds) {
            (Some(user), Some(password), ..) => NatsAuth::UserPassword { user, password },
            (Some(_), None, ..) => {
                return Err(ConfigError::Missing {
                    name: "LIFELINE_NATS_PASSWORD".into(),
                    hint: "LIFELINE_NATS_USER is set".into(),
                })
            }
            (None, Some(_), ..) => {
                return Err(ConfigError::Missing {
                    name: "LIFELINE_NATS_USER".into(),
                    hint: "LIFELINE_NATS_PASSWORD is set".into(),
                })
            }
            (None, None, Some(token), ..) => NatsAuth::Token(token),
            (None, None, None, Some(seed), _) => {
                if !seed.expose_secret().starts_with("SU") {
                    return Err(env.invalid(
                        "LIFELINE_NATS_NKEY_SEED",
                        "must be an NKey user seed (it starts with SU)",
                    ));
                }
                NatsAuth::NKey(seed)
            }
            (None, None, None, None, Some(path)) => NatsAuth::CredsFile(path),
            (None, None, None, None, None) => NatsAuth::None,
        };
        let ca_file = env.file("LIFELINE_NATS_TLS_CA_FILE")?;
        let cert = env.file("LIFELINE_NATS_TLS_CERT_FILE")?;
        let key = env.file("LIFELINE_NATS_TLS_KEY_FILE")?;
        let client_cert = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::Missing {
                    name: "LIFELINE_NATS_TLS_KEY_FILE".into(),
                    hint: "LIFELINE_NATS_TLS_CERT_FILE is set; a client certificate needs its key"
                        .into(),
                })
            }
            (None, Some(_)) => {
                return Err(ConfigError::Missing {
                    name: "LIFELINE_NATS_TLS_CERT_FILE".into(),
                    hint: "LIFELINE_NATS_TLS_KEY_FILE is set; a key needs its certificate".into(),
                })
            }
        };
        let tls_urls = servers.iter().any(|s| s.starts_with("tls://") || s.starts_with("wss://"));
        let required = env.bool_or("LIFELINE_NATS_TLS_REQUIRED", false)? || tls_urls;
        Ok(NatsConfig { servers, auth, tls: NatsTls { ca_file, client_cert, required } })
    }

    /// The servers with any user information in their URLs replaced, for logs and errors.
    pub fn servers_for_display(&self) -> String {
        self.servers.iter().map(|s| redact_url(s)).collect::<Vec<_>>().join(",")
    }
}

/// `nats://user:secret@host:4222` → `nats://***@host:4222`: an URL as it may be logged.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}***@{}", &rest[at + 1..]),
        None => url.to_owned(),
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

    fn nats(pairs: &[(&str, &str)]) -> Result<NatsConfig, ConfigError> {
        NatsConfig::from_env(&Env::from_pairs(pairs.iter().map(|(k, v)| (*k, *v))))
    }

    #[test]
    fn nats_servers_auth_and_tls_are_parsed() {
        let c = nats(&[("NATS_URL", "nats://a:4222, nats://b:4222,tls://c:4222")]).expect("valid");
        assert_eq!(c.servers.len(), 3);
        assert!(c.tls.required, "a tls:// server requires TLS");
        let c = nats(&[("LIFELINE_NATS_USER", "svc"), ("LIFELINE_NATS_PASSWORD", "pw")])
            .expect("valid");
        assert!(matches!(c.auth, NatsAuth::UserPassword { .. }));
        let c = nats(&[("LIFELINE_NATS_TOKEN", "t0k3n")]).expect("valid");
        assert!(matches!(c.auth, NatsAuth::Token(_)));
        let c = nats(&[("LIFELINE_NATS_TLS_REQUIRED", "true")]).expect("valid");
        assert!(c.tls.required);
    }

    #[test]
    fn nats_mistakes_name_the_variable_and_never_the_secret() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("NATS_URL", "http://x y")], "NATS_URL"),
            (&[("LIFELINE_NATS_USER", "svc")], "LIFELINE_NATS_PASSWORD"),
            (&[("LIFELINE_NATS_PASSWORD", "hunter2-secret")], "LIFELINE_NATS_USER"),
            (
                &[("LIFELINE_NATS_TOKEN", "tok-secret"), ("LIFELINE_NATS_NKEY_SEED", "SUxyz")],
                "LIFELINE_NATS_USER",
            ),
            (&[("LIFELINE_NATS_NKEY_SEED", "UAnot-a-seed-secret")], "LIFELINE_NATS_NKEY_SEED"),
            (&[("LIFELINE_NATS_CREDS_FILE", "/nonexistent/x.creds")], "LIFELINE_NATS_CREDS_FILE"),
            (&[("LIFELINE_NATS_TLS_CA_FILE", "/nonexistent/ca.pem")], "LIFELINE_NATS_TLS_CA_FILE"),
            (&[("LIFELINE_NATS_TLS_CERT_FILE", "/etc/hostname")], "LIFELINE_NATS_TLS_KEY_FILE"),
            (&[("LIFELINE_NATS_TLS_REQUIRED", "maybe")], "LIFELINE_NATS_TLS_REQUIRED"),
        ];
        for (pairs, name) in cases {
            let err = nats(pairs).expect_err("invalid");
            let text = err.to_string();
            assert!(text.contains(name), "{pairs:?}: {text}");
            assert!(!text.contains("secret"), "{pairs:?} leaks a secret: {text}");
        }
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("nats://user:pw@host:4222"), "nats://***@host:4222");
        assert_eq!(redact_url("nats://host:4222"), "nats://host:4222");
        assert_eq!(
            redact_url("postgres://u:p@db/x?sslmode=require"),
            "postgres://***@db/x?sslmode=require"
        );
        let c = nats(&[("NATS_URL", "nats://user:topsecret@h:4222")]).expect("valid");
        assert!(!format!("{c:?}").contains("topsecret"));
    }

    #[test]
    fn database_urls_are_checked_without_echoing_them() {
        let env = |v: &str| Env::from_pairs([("DATABASE_URL", v.to_owned())]);
        let err = database_url(&env("postgres://u:pw-secret@db/x?sslmode=sometimes"))
            .expect_err("bad mode");
        assert!(err.to_string().contains("sslmode=sometimes"), "{err}");
        assert!(!err.to_string().contains("pw-secret"), "{err}");
        let err = database_url(&env(
            "postgres://u:pw-secret@db/x?sslmode=verify-full&sslrootcert=/nonexistent/ca.crt",
        ))
        .expect_err("missing root cert");
        assert!(err.to_string().contains("sslrootcert"), "{err}");
        assert!(database_url(&env(
            "postgres://u:p@db:5432/x?sslmode=verify-full&sslrootcert=%2Fetc%2Fhostname"
        ))
        .is_ok());
        let c =
            CommonConfig::from_env(&env("postgres://u:pw-secret@db/x"), "svc", 1).expect("valid");
        assert!(!format!("{c:?}").contains("pw-secret"));
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
