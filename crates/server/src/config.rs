//! Configuration in two stages: raw settings from flags, `ASSAY_*` environment variables and an
//! optional TOML file (in that precedence; the front merges flags and environment, this
//! module reads the file), then one validated [`Config`] the server runs with.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ratelimit::{OnRedisError, Quota, Quotas};
use serde::Deserialize;

/// A secret (a Redis URL may hold a password, the gateway secret signs tenants): printed as
/// `***`, never logged.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: String) -> Self {
        Self(s)
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Settings as given, every one optional. Field names are the TOML keys; the flags and
/// environment variables are the same names in `--kebab-case` and `ASSAY_UPPER_CASE`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    /// Address to listen on.
    pub listen: Option<String>,
    /// Directory of the embedded registry store.
    pub data_dir: Option<PathBuf>,
    /// Redis URL: the registry is shared through Redis instead.
    pub redis_url: Option<String>,
    /// Key prefix in Redis.
    pub redis_prefix: Option<String>,
    /// Most documents processed at once; more are shed with 503.
    pub max_in_flight: Option<usize>,
    /// Largest request body, in bytes.
    pub max_body_bytes: Option<usize>,
    /// Per-request deadline, in milliseconds.
    pub request_timeout_ms: Option<u64>,
    /// How long SIGTERM waits for requests in flight, in milliseconds.
    pub shutdown_grace_ms: Option<u64>,
    /// `pretty` or `json`.
    pub log_format: Option<String>,
    /// Export spans to this OpenTelemetry collector (OTLP/HTTP traces URL, e.g.
    /// `http://127.0.0.1:4318/v1/traces`).
    pub otlp_endpoint: Option<String>,
    /// Who may call: `keys` (API keys, the default), `gateway` (a tenant signed by a trusted
    /// gateway) or `none` (everything open, as the default tenant: local use only).
    pub auth: Option<String>,
    /// The secret a gateway signs tenants with (`auth = "gateway"`), at least 32 characters.
    pub gateway_secret: Option<Secret>,
    /// Where rate limits are kept: `off`, `local` (this process) or `redis` (shared by every
    /// instance). Default: `redis` when limits are configured and the registry is on Redis,
    /// `local` when they are configured otherwise, else `off`.
    pub rate_limit_backend: Option<String>,
    /// Redis for shared rate limits, when it is not the registry's.
    pub rate_limit_redis_url: Option<Secret>,
    /// With the Redis backend and Redis not answering: `open` (limit in this process alone,
    /// the default) or `closed` (refuse limited tenants' requests).
    pub rate_limit_on_redis_error: Option<String>,
    /// Every tenant's default rate, in requests per second (none: unlimited).
    pub rate_limit_per_second: Option<u32>,
    /// Every tenant's default burst (default: the rate, one second's worth).
    pub rate_limit_burst: Option<u32>,
    /// Per-tenant settings (TOML only): `[tenants.acme] rate_limit = { per_second = 5,
    /// burst = 10 }`.
    pub tenants: Option<HashMap<String, TenantSettings>>,
}

/// Settings of one tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// The tenant's own rate limit, instead of the default.
    pub rate_limit: Option<Quota>,
}

/// Why the configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file cannot be read or parsed.
    #[error("configuration file {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// A setting has an unusable value.
    #[error("invalid setting {name}: {message}")]
    Invalid {
        /// The setting's name.
        name: &'static str,
        /// Why.
        message: String,
    },
}

/// Where the registry lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// The embedded store in a data directory.
    Embedded(PathBuf),
    /// Redis, shared by every instance with the same prefix.
    Redis {
        /// Connection URL.
        url: Secret,
        /// Key prefix.
        prefix: String,
    },
}

/// Log output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// How callers are authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthConfig {
    /// Nobody: every request acts for the default tenant as an admin.
    None,
    /// API keys (`Authorization: Bearer` or `x-api-key`; gRPC metadata alike).
    Keys,
    /// A gateway in front authenticates callers and signs their tenant with this secret.
    Gateway {
        /// The shared secret.
        secret: Secret,
    },
}

/// Where rate limits are decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateLimitBackend {
    /// No limits.
    Off,
    /// In this process.
    Local,
    /// In Redis, shared by every instance.
    Redis {
        /// Connection URL.
        url: Secret,
        /// Key prefix (the registry's, so that one prefix is one deployment).
        prefix: String,
        /// What to do when Redis does not answer.
        on_error: OnRedisError,
    },
}

/// Rate limiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Where limits are decided.
    pub backend: RateLimitBackend,
    /// Which tenant gets which quota.
    pub quotas: Quotas,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// Registry store.
    pub store: StoreConfig,
    /// Most documents processed at once.
    pub max_in_flight: usize,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Per-request deadline.
    pub request_timeout: Duration,
    /// Grace period for requests in flight at shutdown.
    pub shutdown_grace: Duration,
    /// Log output.
    pub log_format: LogFormat,
    /// Where spans are exported, if anywhere.
    pub otlp_endpoint: Option<String>,
    /// Authentication.
    pub auth: AuthConfig,
    /// Rate limiting.
    pub rate_limit: RateLimitConfig,
}

/// The shortest gateway secret accepted: 32 characters, so that it can hold 128 bits or more.
pub const MIN_GATEWAY_SECRET_CHARS: usize = 32;

impl RawSettings {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let file_error = |message: String| ConfigError::File {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
        toml::from_str(&text).map_err(|e| file_error(e.to_string()))
    }

    /// These settings, with every setting `over` gives taking precedence.
    pub fn overlaid_by(self, over: RawSettings) -> RawSettings {
        RawSettings {
            listen: over.listen.or(self.listen),
            data_dir: over.data_dir.or(self.data_dir),
            redis_url: over.redis_url.or(self.redis_url),
            redis_prefix: over.redis_prefix.or(self.redis_prefix),
            max_in_flight: over.max_in_flight.or(self.max_in_flight),
            max_body_bytes: over.max_body_bytes.or(self.max_body_bytes),
            request_timeout_ms: over.request_timeout_ms.or(self.request_timeout_ms),
            shutdown_grace_ms: over.shutdown_grace_ms.or(self.shutdown_grace_ms),
            log_format: over.log_format.or(self.log_format),
            otlp_endpoint: over.otlp_endpoint.or(self.otlp_endpoint),
            auth: over.auth.or(self.auth),
            gateway_secret: over.gateway_secret.or(self.gateway_secret),
            rate_limit_backend: over.rate_limit_backend.or(self.rate_limit_backend),
            rate_limit_redis_url: over.rate_limit_redis_url.or(self.rate_limit_redis_url),
            rate_limit_on_redis_error: over
                .rate_limit_on_redis_error
                .or(self.rate_limit_on_redis_error),
            rate_limit_per_second: over.rate_limit_per_second.or(self.rate_limit_per_second),
            rate_limit_burst: over.rate_limit_burst.or(self.rate_limit_burst),
            tenants: over.tenants.or(self.tenants),
        }
    }

    /// Checks every setting and fills in defaults.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let invalid = |name, message: &str| ConfigError::Invalid {
            name,
            message: message.to_owned(),
        };
        let listen = self
            .listen
            .as_deref()
            .unwrap_or("127.0.0.1:8080")
            .parse::<SocketAddr>()
            .map_err(|e| {
                invalid(
                    "listen",
                    &format!("{e} (expected HOST:PORT, e.g. 127.0.0.1:8080)"),
                )
            })?;
        if let Some(e) = &self.otlp_endpoint
            && !e.starts_with("http://")
            && !e.starts_with("https://")
        {
            return Err(invalid(
                "otlp_endpoint",
                "must be an http:// or https:// URL (OTLP/HTTP)",
            ));
        }
        let auth = match self.auth.as_deref().unwrap_or("keys") {
            "none" => AuthConfig::None,
            "keys" => AuthConfig::Keys,
            "gateway" => match self.gateway_secret {
                Some(secret) if secret.expose().chars().count() >= MIN_GATEWAY_SECRET_CHARS => {
                    AuthConfig::Gateway { secret }
                }
                Some(_) => {
                    return Err(invalid(
                        "gateway_secret",
                        &format!("must be at least {MIN_GATEWAY_SECRET_CHARS} characters"),
                    ));
                }
                None => {
                    return Err(invalid("gateway_secret", "is required with auth = gateway"));
                }
            },
            _ => return Err(invalid("auth", "must be none, keys or gateway")),
        };
        let rate_limit = rate_limit(
            self.rate_limit_backend.as_deref(),
            self.rate_limit_redis_url
                .or_else(|| self.redis_url.clone().map(Secret::new)),
            self.redis_prefix.as_deref().unwrap_or("assay"),
            self.rate_limit_on_redis_error.as_deref(),
            self.rate_limit_per_second,
            self.rate_limit_burst,
            self.tenants.unwrap_or_default(),
            self.redis_url.is_some(),
        )?;
        let store = match self.redis_url {
            Some(url) if !url.starts_with("redis://") && !url.starts_with("rediss://") => {
                return Err(invalid(
                    "redis_url",
                    "must start with redis:// or rediss://",
                ));
            }
            Some(url) => StoreConfig::Redis {
                url: Secret::new(url),
                prefix: self.redis_prefix.unwrap_or_else(|| "assay".into()),
            },
            None => StoreConfig::Embedded(self.data_dir.unwrap_or_else(|| "assay-data".into())),
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let max_in_flight = self.max_in_flight.unwrap_or(cores * 64);
        if max_in_flight == 0 {
            return Err(invalid("max_in_flight", "must be at least 1"));
        }
        let max_body_bytes = self.max_body_bytes.unwrap_or(16 * 1024 * 1024);
        if max_body_bytes == 0 {
            return Err(invalid("max_body_bytes", "must be at least 1"));
        }
        let request_timeout = Duration::from_millis(self.request_timeout_ms.unwrap_or(10_000));
        if request_timeout.is_zero() {
            return Err(invalid("request_timeout_ms", "must be at least 1"));
        }
        let log_format = match self.log_format.as_deref().unwrap_or("pretty") {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            _ => return Err(invalid("log_format", "must be pretty or json")),
        };
        Ok(Config {
            listen,
            store,
            max_in_flight,
            max_body_bytes,
            request_timeout,
            shutdown_grace: Duration::from_millis(self.shutdown_grace_ms.unwrap_or(30_000)),
            log_format,
            otlp_endpoint: self.otlp_endpoint,
            auth,
            rate_limit,
        })
    }
}

/// The rate limit settings, checked.
#[allow(clippy::too_many_arguments)]
fn rate_limit(
    backend: Option<&str>,
    redis_url: Option<Secret>,
    prefix: &str,
    on_error: Option<&str>,
    per_second: Option<u32>,
    burst: Option<u32>,
    tenants: HashMap<String, TenantSettings>,
    registry_on_redis: bool,
) -> Result<RateLimitConfig, ConfigError> {
    let invalid = |name, message: String| ConfigError::Invalid { name, message };
    let default = match (per_second, burst) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(invalid(
                "rate_limit_burst",
                "needs rate_limit_per_second".into(),
            ));
        }
        (Some(rate), burst) => Some(
            Quota::new(rate, burst.unwrap_or(rate))
                .map_err(|e| invalid("rate_limit_per_second", e.to_string()))?,
        ),
    };
    let quotas = Quotas {
        default,
        tenants: tenants
            .into_iter()
            .filter_map(|(tenant, t)| t.rate_limit.map(|q| (tenant, q)))
            .collect(),
    };
    let limited = quotas.default.is_some() || !quotas.tenants.is_empty();
    let on_error = match on_error.unwrap_or("open") {
        "open" => OnRedisError::Open,
        "closed" => OnRedisError::Closed,
        _ => {
            return Err(invalid(
                "rate_limit_on_redis_error",
                "must be open or closed".into(),
            ));
        }
    };
    let backend = match backend {
        Some("off") => RateLimitBackend::Off,
        Some("local") => RateLimitBackend::Local,
        Some("redis") => {
            let url = redis_url.ok_or_else(|| {
                invalid(
                    "rate_limit_backend",
                    "redis needs rate_limit_redis_url or redis_url".into(),
                )
            })?;
            if !url.expose().starts_with("redis://") && !url.expose().starts_with("rediss://") {
                return Err(invalid(
                    "rate_limit_redis_url",
                    "must start with redis:// or rediss://".into(),
                ));
            }
            RateLimitBackend::Redis {
                url,
                prefix: prefix.to_owned(),
                on_error,
            }
        }
        Some(_) => {
            return Err(invalid(
                "rate_limit_backend",
                "must be off, local or redis".into(),
            ));
        }
        None if !limited => RateLimitBackend::Off,
        None => match redis_url {
            Some(url) if registry_on_redis => RateLimitBackend::Redis {
                url,
                prefix: prefix.to_owned(),
                on_error,
            },
            _ => RateLimitBackend::Local,
        },
    };
    Ok(RateLimitConfig { backend, quotas })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_is_flags_then_environment_then_file() {
        let file: RawSettings =
            toml::from_str("listen = \"127.0.0.1:9000\"\nmax_in_flight = 7\nlog_format = \"json\"")
                .unwrap();
        let flags = RawSettings {
            listen: Some("127.0.0.1:9001".into()),
            ..RawSettings::default()
        };
        let config = file.overlaid_by(flags).validate().unwrap();
        assert_eq!(config.listen.port(), 9001);
        assert_eq!(config.max_in_flight, 7);
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.store, StoreConfig::Embedded("assay-data".into()));
    }

    #[test]
    fn bad_settings_are_named() {
        let bad = |s: RawSettings| s.validate().unwrap_err().to_string();
        assert!(
            bad(RawSettings {
                listen: Some("nowhere".into()),
                ..Default::default()
            })
            .contains("listen")
        );
        assert!(
            bad(RawSettings {
                redis_url: Some("http://x".into()),
                ..Default::default()
            })
            .contains("redis_url")
        );
        assert!(
            bad(RawSettings {
                max_in_flight: Some(0),
                ..Default::default()
            })
            .contains("max_in_flight")
        );
        assert!(toml::from_str::<RawSettings>("lisen = 1").is_err());
    }

    #[test]
    fn auth_defaults_to_keys_and_a_gateway_needs_a_long_secret() {
        assert_eq!(
            RawSettings::default().validate().unwrap().auth,
            AuthConfig::Keys
        );
        let gateway = |secret: Option<&str>| RawSettings {
            auth: Some("gateway".into()),
            gateway_secret: secret.map(|s| Secret::new(s.into())),
            ..Default::default()
        };
        assert!(gateway(None).validate().is_err());
        assert!(gateway(Some("short")).validate().is_err());
        let long = "x".repeat(MIN_GATEWAY_SECRET_CHARS);
        assert!(matches!(
            gateway(Some(&long)).validate().unwrap().auth,
            AuthConfig::Gateway { .. }
        ));
        assert!(
            RawSettings {
                auth: Some("open".into()),
                ..Default::default()
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn rate_limits_come_from_flags_and_per_tenant_tables() {
        let file: RawSettings = toml::from_str(
            "rate_limit_per_second = 100\n[tenants.acme]\nrate_limit = { per_second = 5, burst = 10 }",
        )
        .unwrap();
        let config = file.validate().unwrap();
        assert_eq!(config.rate_limit.backend, RateLimitBackend::Local);
        let q = &config.rate_limit.quotas;
        assert_eq!(q.quota_for("acme"), Some(Quota::new(5, 10).unwrap()));
        assert_eq!(q.quota_for("other"), Some(Quota::new(100, 100).unwrap()));
        // On a Redis registry, limits are shared through it unless told otherwise.
        let on_redis = RawSettings {
            redis_url: Some("redis://127.0.0.1:6379".into()),
            rate_limit_per_second: Some(10),
            ..Default::default()
        };
        assert!(matches!(
            on_redis.clone().validate().unwrap().rate_limit.backend,
            RateLimitBackend::Redis {
                on_error: OnRedisError::Open,
                ..
            }
        ));
        let closed = RawSettings {
            rate_limit_on_redis_error: Some("closed".into()),
            ..on_redis
        };
        assert!(matches!(
            closed.validate().unwrap().rate_limit.backend,
            RateLimitBackend::Redis {
                on_error: OnRedisError::Closed,
                ..
            }
        ));
        // Nothing configured: no limits.
        assert_eq!(
            RawSettings::default()
                .validate()
                .unwrap()
                .rate_limit
                .backend,
            RateLimitBackend::Off
        );
        let bad = |s: RawSettings| s.validate().unwrap_err().to_string();
        assert!(
            bad(RawSettings {
                rate_limit_per_second: Some(0),
                ..Default::default()
            })
            .contains("rate_limit_per_second")
        );
        assert!(
            bad(RawSettings {
                rate_limit_backend: Some("redis".into()),
                ..Default::default()
            })
            .contains("rate_limit_backend")
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let s = RawSettings {
            redis_url: Some("redis://:hunter2@h".into()),
            auth: Some("gateway".into()),
            gateway_secret: Some(Secret::new("swordfish".repeat(4))),
            ..Default::default()
        };
        assert!(!format!("{s:?}").contains("swordfish"));
        let config = format!("{:?}", s.validate().unwrap());
        assert!(!config.contains("hunter2"), "{config}");
        assert!(!config.contains("swordfish"), "{config}");
    }
}
