//! Where the connections go and how they are secured: `DATABASE_URL` (checked without ever
//! being echoed) and NATS (servers, authentication, TLS).

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

use super::{ConfigError, Env};

/// The `sslmode` values Postgres clients know, weakest first.
const SSL_MODES: [&str; 6] = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];

/// `DATABASE_URL`, checked without ever echoing it (it usually carries a password): the scheme,
/// the `sslmode`, and that the certificate files it names can be read.
pub(super) fn database_url(env: &Env) -> Result<SecretString, ConfigError> {
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
    use crate::config::CommonConfig;
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
}
