//! Quotas: how many requests a tenant may make, as a steady rate and a burst allowance, and
//! the table that says which quota applies to which tenant.
//!
//! Both are read from configuration (TOML in the server), so they deserialize with serde and
//! refuse what cannot be a quota (zeros, unknown keys) while being read, rather than being
//! checked later by whoever uses them:
//!
//! ```toml
//! [rate_limit]
//! default = { per_second = 100, burst = 200 }
//!
//! [rate_limit.tenants.acme]
//! per_second = 5
//! burst = 10
//! ```

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

/// The fastest rate a quota may have. The shared limiter keeps time in whole microseconds,
/// so one request per microsecond is the finest rate it can express.
pub const MAX_PER_SECOND: u32 = 1_000_000;

/// A rate limit in the terms of GCRA (the generic cell rate algorithm, a token bucket that
/// stores one timestamp): requests are admitted at `per_second` on average, and up to
/// `burst` of them at once after a quiet period.
///
/// Equivalently: a bucket of `burst` tokens that refills one token every `1 / per_second`
/// seconds, each request taking one. Both numbers are greater than zero, so a `Quota`
/// always admits something; "no limit" is the absence of a quota (see [`Quotas`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "QuotaFields")]
pub struct Quota {
    per_second: u32,
    burst: u32,
}

/// What a quota looks like in configuration, before it is checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaFields {
    per_second: u32,
    burst: u32,
}

impl TryFrom<QuotaFields> for Quota {
    type Error = QuotaError;

    fn try_from(f: QuotaFields) -> Result<Self, QuotaError> {
        Quota::new(f.per_second, f.burst)
    }
}

/// Why numbers do not make a [`Quota`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// A rate of zero would refuse every request forever.
    #[error("per_second must be greater than 0")]
    ZeroRate,
    /// A burst of zero would refuse every request forever.
    #[error("burst must be greater than 0")]
    ZeroBurst,
    /// Faster than [`MAX_PER_SECOND`].
    #[error("per_second must be at most {MAX_PER_SECOND}, not {0}")]
    TooFast(u32),
}

impl Quota {
    /// A quota of `per_second` requests a second on average and `burst` at once.
    pub fn new(per_second: u32, burst: u32) -> Result<Self, QuotaError> {
        match (per_second, burst) {
            (0, _) => Err(QuotaError::ZeroRate),
            (_, 0) => Err(QuotaError::ZeroBurst),
            (p, _) if p > MAX_PER_SECOND => Err(QuotaError::TooFast(p)),
            (per_second, burst) => Ok(Self { per_second, burst }),
        }
    }

    /// The steady rate, in requests per second.
    pub fn per_second(self) -> u32 {
        self.per_second
    }

    /// How many requests may go ahead at once after a quiet period: the size of the bucket.
    pub fn burst(self) -> u32 {
        self.burst
    }

    /// The time one request's token takes to come back: `1 s / per_second`.
    pub fn interval(self) -> Duration {
        Duration::from_secs(1) / self.per_second
    }

    /// The time an empty bucket takes to fill up: `burst / per_second` seconds. This is the
    /// window `w` of the `RateLimit-Policy` header, whose quota `q` is [`burst`](Self::burst).
    pub fn window(self) -> Duration {
        // In nanoseconds, so that a burst that is not a multiple of the rate stays exact.
        let nanos = u128::from(self.burst) * 1_000_000_000 / u128::from(self.per_second);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// Which quota applies to which tenant: its own when it has one, else the default; no
/// quota at all (unlimited) when there is neither.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    /// The quota of every tenant without one of its own; `None` leaves them unlimited.
    #[serde(default)]
    pub default: Option<Quota>,
    /// Quotas of named tenants, which replace the default for them.
    #[serde(default)]
    pub tenants: HashMap<String, Quota>,
}

impl Quotas {
    /// The quota of `tenant`, or `None` when it is unlimited.
    pub fn quota_for(&self, tenant: &str) -> Option<Quota> {
        self.tenants.get(tenant).copied().or(self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Config {
        rate_limit: Quotas,
    }

    fn parse(text: &str) -> Result<Quotas, String> {
        toml::from_str::<Config>(text)
            .map(|c| c.rate_limit)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn zeros_and_absurd_rates_are_refused() {
        assert_eq!(Quota::new(0, 1), Err(QuotaError::ZeroRate));
        assert_eq!(Quota::new(1, 0), Err(QuotaError::ZeroBurst));
        assert_eq!(Quota::new(0, 0), Err(QuotaError::ZeroRate));
        assert_eq!(
            Quota::new(MAX_PER_SECOND + 1, 1),
            Err(QuotaError::TooFast(MAX_PER_SECOND + 1))
        );
        let q = Quota::new(MAX_PER_SECOND, u32::MAX).unwrap();
        assert_eq!((q.per_second(), q.burst()), (MAX_PER_SECOND, u32::MAX));
    }

    #[test]
    fn interval_and_window() {
        let q = Quota::new(4, 10).unwrap();
        assert_eq!(q.interval(), Duration::from_millis(250));
        assert_eq!(q.window(), Duration::from_millis(2500));
        let q = Quota::new(3, 1).unwrap();
        assert_eq!(q.window(), Duration::from_nanos(333_333_333));
    }

    #[test]
    fn a_tenant_quota_replaces_the_default() {
        let acme = Quota::new(5, 10).unwrap();
        let default = Quota::new(100, 200).unwrap();
        let mut quotas = Quotas {
            default: Some(default),
            tenants: HashMap::from([("acme".to_owned(), acme)]),
        };
        assert_eq!(quotas.quota_for("acme"), Some(acme));
        assert_eq!(quotas.quota_for("other"), Some(default));
        quotas.default = None;
        assert_eq!(quotas.quota_for("acme"), Some(acme));
        assert_eq!(quotas.quota_for("other"), None);
    }

    #[test]
    fn reads_the_configuration_form() {
        let quotas = parse(
            r#"
            [rate_limit]
            default = { per_second = 100, burst = 200 }

            [rate_limit.tenants.acme]
            per_second = 5
            burst = 10
            "#,
        )
        .unwrap();
        assert_eq!(quotas.default, Some(Quota::new(100, 200).unwrap()));
        assert_eq!(quotas.quota_for("acme"), Some(Quota::new(5, 10).unwrap()));
        assert_eq!(quotas.tenants.len(), 1);

        // Everything is optional: an empty table limits nobody.
        assert_eq!(parse("[rate_limit]").unwrap(), Quotas::default());
    }

    #[test]
    fn configuration_errors_say_what_is_wrong() {
        let err = parse("[rate_limit]\ndefault = { per_second = 0, burst = 5 }").unwrap_err();
        assert!(err.contains("per_second must be greater than 0"), "{err}");
        let err = parse("[rate_limit.tenants.acme]\nper_second = 5\nburst = 0").unwrap_err();
        assert!(err.contains("burst must be greater than 0"), "{err}");
        // A misspelt key must not silently leave tenants unlimited.
        let err = parse("[rate_limit]\ndefualt = { per_second = 1, burst = 1 }").unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
        let err = parse("[rate_limit]\ndefault = { per_second = 1, brust = 1 }").unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
        let err = parse("[rate_limit]\ndefault = { per_second = 1 }").unwrap_err();
        assert!(err.contains("missing field `burst`"), "{err}");
        let err = parse("[rate_limit]\ndefault = { per_second = -1, burst = 1 }").unwrap_err();
        assert!(!err.is_empty());
    }
}
