//! The simulator's configuration: a typed struct with the documented defaults,
//! overridden by `SIM_*` environment variables and validated at start.

use std::net::SocketAddr;

/// Default X OAuth client id when `SIM_X_CLIENT_ID` is unset.
pub const DEFAULT_X_CLIENT_ID: &str = "lifeline-x-dev";
/// Default X OAuth client secret when `SIM_X_CLIENT_SECRET` is unset. Only
/// acceptable because this is the simulator, never a real platform.
pub const DEFAULT_X_CLIENT_SECRET: &str = "sim-x-secret";
/// The platforms with an OAuth client registration, by control key. Each
/// reads `SIM_<KEY>_CLIENT_ID` / `SIM_<KEY>_CLIENT_SECRET` (key upper-cased)
/// and defaults to `lifeline-<key>-dev` / `sim-<key>-secret`.
pub const PLATFORM_KEYS: &[&str] =
    &["x", "linkedin", "instagram", "facebook", "youtube", "tiktok", "threads"];

/// Default listen address when `SIM_HTTP_ADDR` is unset.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8090";

/// An OAuth client (an "app") registered with one simulated platform.
#[derive(Clone)]
pub struct ClientRegistration {
    /// Platform key, e.g. `"x"`.
    pub platform: String,
    pub client_id: String,
    /// `Some` for a confidential client (must authenticate with HTTP Basic on
    /// the token endpoint, as X requires), `None` for a public client (sends
    /// only `client_id` in the form).
    pub client_secret: Option<String>,
}

impl std::fmt::Debug for ClientRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret must never reach a log line.
        f.debug_struct("ClientRegistration")
            .field("platform", &self.platform)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// Simulator configuration; `from_env` reads it, `Default` gives the
/// documented defaults.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// How many times faster than real life platform time runs (`SIM_TIME_SCALE`).
    pub time_scale: f64,
    /// Registered OAuth clients.
    pub clients: Vec<ClientRegistration>,
    /// Base URL the simulator is reachable at (`SIM_PUBLIC_BASE_URL`), logged
    /// at start so a demo knows the authorize URL.
    pub public_base_url: String,
    /// Address `main` binds (`SIM_HTTP_ADDR`); `run` takes a bound listener.
    pub http_addr: SocketAddr,
    /// Whether the Google app is in "Testing" publishing status
    /// (`SIM_GOOGLE_TESTING_MODE`): refresh tokens then die after 7 days.
    pub google_testing_mode: bool,
}

/// An invalid configuration value, named by its environment variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{key} must be a finite number > 0, got {value:?}")]
    TimeScale { key: &'static str, value: String },
    #[error("{key} must be a socket address like 127.0.0.1:8090, got {value:?}")]
    Addr { key: &'static str, value: String },
    #[error("{key} must not be empty")]
    Empty { key: String },
    #[error("{key} must be true or false, got {value:?}")]
    Bool { key: &'static str, value: String },
}

impl Default for SimConfig {
    fn default() -> Self {
        let http_addr: SocketAddr =
            DEFAULT_HTTP_ADDR.parse().unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8090)));
        Self {
            time_scale: 1.0,
            clients: PLATFORM_KEYS
                .iter()
                .map(|p| ClientRegistration {
                    platform: (*p).to_owned(),
                    client_id: format!("lifeline-{p}-dev"),
                    client_secret: Some(format!("sim-{p}-secret")),
                })
                .collect(),
            public_base_url: format!("http://{http_addr}"),
            http_addr,
            google_testing_mode: false,
        }
    }
}

impl SimConfig {
    /// Reads `SIM_TIME_SCALE`, `SIM_<PLATFORM>_CLIENT_ID`,
    /// `SIM_<PLATFORM>_CLIENT_SECRET` (empty = public client, X only),
    /// `SIM_GOOGLE_TESTING_MODE`, `SIM_HTTP_ADDR` and `SIM_PUBLIC_BASE_URL`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// `from_env` over any key lookup, so it can be tested without touching
    /// the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let defaults = Self::default();

        let time_scale = match lookup("SIM_TIME_SCALE") {
            None => defaults.time_scale,
            Some(raw) => match raw.trim().parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => v,
                _ => return Err(ConfigError::TimeScale { key: "SIM_TIME_SCALE", value: raw }),
            },
        };

        let http_addr = match lookup("SIM_HTTP_ADDR") {
            None => defaults.http_addr,
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|_| ConfigError::Addr { key: "SIM_HTTP_ADDR", value: raw })?,
        };

        let mut clients = Vec::with_capacity(PLATFORM_KEYS.len());
        for p in PLATFORM_KEYS {
            let upper = p.to_ascii_uppercase();
            let id_key = format!("SIM_{upper}_CLIENT_ID");
            let client_id = lookup(&id_key).unwrap_or_else(|| format!("lifeline-{p}-dev"));
            if client_id.trim().is_empty() {
                return Err(ConfigError::Empty { key: id_key });
            }
            let secret_key = format!("SIM_{upper}_CLIENT_SECRET");
            let client_secret = match lookup(&secret_key) {
                None => Some(format!("sim-{p}-secret")),
                Some(s) if s.is_empty() && *p == "x" => None,
                Some(s) if s.is_empty() => return Err(ConfigError::Empty { key: secret_key }),
                Some(s) => Some(s),
            };
            clients.push(ClientRegistration {
                platform: (*p).to_owned(),
                client_id: client_id.trim().to_owned(),
                client_secret,
            });
        }

        let google_testing_mode = match lookup("SIM_GOOGLE_TESTING_MODE") {
            None => false,
            Some(raw) => match raw.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" | "" => false,
                _ => return Err(ConfigError::Bool { key: "SIM_GOOGLE_TESTING_MODE", value: raw }),
            },
        };

        let public_base_url = lookup("SIM_PUBLIC_BASE_URL")
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| format!("http://{http_addr}"));

        Ok(Self {
            time_scale,
            clients,
            public_base_url: public_base_url.trim_end_matches('/').to_owned(),
            http_addr,
            google_testing_mode,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults() {
        let c = SimConfig::from_lookup(lookup(&[])).expect("defaults are valid");
        assert_eq!(c.time_scale, 1.0);
        assert_eq!(c.clients[0].client_id, DEFAULT_X_CLIENT_ID);
        assert_eq!(c.public_base_url, "http://127.0.0.1:8090");
    }

    #[test]
    fn bad_time_scale_names_the_variable() {
        for bad in ["0", "-1", "NaN", "inf", "fast"] {
            let err = SimConfig::from_lookup(lookup(&[("SIM_TIME_SCALE", bad)]))
                .expect_err("must be rejected");
            assert!(err.to_string().contains("SIM_TIME_SCALE"), "{err}");
        }
    }

    #[test]
    fn empty_secret_means_public_client() {
        let c = SimConfig::from_lookup(lookup(&[("SIM_X_CLIENT_SECRET", "")])).expect("valid");
        let x = c.clients.iter().find(|r| r.platform == "x").expect("x");
        assert!(x.client_secret.is_none());
    }

    #[test]
    fn every_platform_gets_a_client() {
        let c = SimConfig::from_lookup(lookup(&[
            ("SIM_TIKTOK_CLIENT_ID", "tt-app"),
            ("SIM_GOOGLE_TESTING_MODE", "true"),
        ]))
        .expect("valid");
        assert_eq!(c.clients.len(), PLATFORM_KEYS.len());
        let tt = c.clients.iter().find(|r| r.platform == "tiktok").expect("tiktok");
        assert_eq!(tt.client_id, "tt-app");
        assert_eq!(tt.client_secret.as_deref(), Some("sim-tiktok-secret"));
        assert!(c.google_testing_mode);
        let err = SimConfig::from_lookup(lookup(&[("SIM_LINKEDIN_CLIENT_SECRET", "")]))
            .expect_err("confidential only");
        assert!(err.to_string().contains("SIM_LINKEDIN_CLIENT_SECRET"));
        let err = SimConfig::from_lookup(lookup(&[("SIM_GOOGLE_TESTING_MODE", "maybe")]))
            .expect_err("bool");
        assert!(err.to_string().contains("SIM_GOOGLE_TESTING_MODE"));
    }

    #[test]
    fn debug_redacts_secret() {
        let c = SimConfig::default();
        assert!(!format!("{c:?}").contains(DEFAULT_X_CLIENT_SECRET));
    }
}
