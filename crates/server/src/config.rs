//! Configuration in two stages: raw settings from flags, `ASSAY_*` environment variables and an
//! optional TOML file (in that precedence; the front merges flags and environment, this
//! module reads the file), then one validated [`Config`] the server runs with.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A secret (a Redis URL may hold a password): printed as `***`, never logged.
#[derive(Clone, PartialEq, Eq)]
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
}

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
        })
    }
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
    fn secrets_do_not_print() {
        let s = RawSettings {
            redis_url: Some("redis://:hunter2@h".into()),
            ..Default::default()
        };
        assert!(!format!("{:?}", s.validate().unwrap()).contains("hunter2"));
    }
}
