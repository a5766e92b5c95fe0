//! Who is calling, and may they: authentication (API keys, a gateway's signed tenant, or
//! nobody in open mode), roles, and per-tenant rate limits, for HTTP and gRPC alike.
//!
//! [`guard`] runs before every API route (not health, metrics, the OpenAPI document or
//! reflection): it finds the [`Caller`] or answers 401, asks the rate limiter or answers 429,
//! and puts the `Caller` in the request's extensions, where handlers take it from. Handlers
//! check the role ([`Caller::require`]): registry and key management need `admin`;
//! processing and validating documents need `client` (which `admin` includes). Handlers act
//! only on the caller's tenant, so another tenant's resources are simply not there (404, never
//! 403, which would say they exist).
//!
//! Gateway mode: a gateway in front (the Node.js one, or any other) authenticates its callers
//! and passes the tenant and role in headers, signed with a secret it shares with the engine:
//!
//! ```text
//! x-assay-tenant: acme
//! x-assay-role: client
//! x-assay-key-id: <the gateway's id of the caller's key, for audit logs; may be empty>
//! x-assay-timestamp: <unix seconds>
//! x-assay-signature: hex(HMAC-SHA256(secret, "assay-gateway-v1\n{timestamp}\n{METHOD}\n{path}\n{tenant}\n{role}\n{key_id}"))
//! ```
//!
//! The signature binds the tenant to the method, the path and a time: a client that reaches
//! the engine directly cannot name a tenant without the secret, and a captured header set
//! replays only on the same route for [`GATEWAY_MAX_SKEW`].

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use ratelimit::{Decision, Limiter, Quota};
use registry::{AuthError, KeyInfo, Keys, NewKey, Role};
use sha2::Sha256;

use crate::config::{AuthConfig, RateLimitBackend, Secret};
use crate::error::ApiError;
use crate::{AppState, Config};

/// The header that carries an API key, besides `Authorization: Bearer`.
pub const API_KEY_HEADER: &str = "x-api-key";
/// Gateway mode: the caller's tenant.
pub const TENANT_HEADER: &str = "x-assay-tenant";
/// Gateway mode: the caller's role, `admin` or `client`.
pub const ROLE_HEADER: &str = "x-assay-role";
/// Gateway mode: the id of the key the gateway authenticated the caller with (may be empty).
pub const KEY_ID_HEADER: &str = "x-assay-key-id";
/// Gateway mode: when the gateway signed, in unix seconds.
pub const TIMESTAMP_HEADER: &str = "x-assay-timestamp";
/// Gateway mode: the signature (lowercase hex HMAC-SHA256).
pub const SIGNATURE_HEADER: &str = "x-assay-signature";
/// How far a gateway's timestamp may be from this server's clock, either way.
pub const GATEWAY_MAX_SKEW: Duration = Duration::from_secs(60);

/// The name of the rate limit policy in `RateLimit` and `RateLimit-Policy` headers.
const POLICY: &str = "tenant";

/// Who a request acts for, as the guard established it.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The tenant whose resources the request may use.
    pub tenant: Arc<str>,
    /// What it may do.
    pub role: Role,
    /// The API key it used (`None` in open mode; the gateway's key id in gateway mode).
    pub key_id: Option<Arc<str>>,
    /// The request id, for audit logs.
    pub request_id: Arc<str>,
}

impl Caller {
    /// Refuses with 403 unless the caller's role includes `role` (admin includes client).
    pub fn require(&self, role: Role) -> Result<&Self, ApiError> {
        match (role, self.role) {
            (Role::Client, _) | (Role::Admin, Role::Admin) => Ok(self),
            (Role::Admin, Role::Client) => Err(ApiError::Forbidden(
                "this operation needs an admin key; a client key may only process and validate"
                    .into(),
            )),
        }
    }

    /// Logs a change the caller made, for the audit trail: who (tenant, key), what, and the
    /// request it came in.
    pub fn audit(&self, action: &str, resource: &str) {
        tracing::info!(
            target: "assay::audit",
            action,
            resource,
            tenant = %self.tenant,
            key_id = self.key_id.as_deref().unwrap_or("-"),
            request_id = %self.request_id,
            "audit"
        );
    }
}

/// A handler's caller, as [`guard`] left it. A route without the guard has none: that is a
/// bug in the router, answered as an internal error rather than as an open door.
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, ApiError> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            tracing::error!(path = parts.uri.path(), "a route without the auth guard");
            ApiError::Internal
        })
    }
}

/// How requests are authenticated and limited.
#[derive(Clone)]
pub struct Access {
    mode: Mode,
    /// The API keys (kept in the registry's store).
    pub keys: Arc<Keys>,
    limiter: Limiter,
}

#[derive(Clone)]
enum Mode {
    Open,
    Keys,
    Gateway(Secret),
}

impl Access {
    /// Access as `auth` says, over `keys`, limited by `limiter`.
    pub fn new(auth: &AuthConfig, keys: Arc<Keys>, limiter: Limiter) -> Self {
        let mode = match auth {
            AuthConfig::None => Mode::Open,
            AuthConfig::Keys => Mode::Keys,
            AuthConfig::Gateway { secret } => Mode::Gateway(secret.clone()),
        };
        Self {
            mode,
            keys,
            limiter,
        }
    }

    /// Access as `config` says, over `keys` (holding `key_count` keys), with the rate limiter
    /// it names; says at start how callers are authenticated, loudly when they are not.
    pub async fn build(config: &Config, keys: Arc<Keys>, key_count: usize) -> anyhow::Result<Self> {
        match &config.auth {
            AuthConfig::None => tracing::warn!(
                "AUTHENTICATION IS OFF (--auth none): anyone who can reach {} can read, change \
                 and run everything, as tenant {}. Use this only on a machine of your own.",
                config.listen,
                registry::DEFAULT_TENANT
            ),
            AuthConfig::Keys if key_count == 0 => tracing::warn!(
                "no API keys exist yet, so every request will be refused with 401: create one \
                 with `assay keys create --tenant NAME --role admin` (on the same store)"
            ),
            AuthConfig::Keys => tracing::info!(keys = key_count, "API keys required"),
            AuthConfig::Gateway { .. } => {
                tracing::info!("trusting tenants signed by the gateway")
            }
        }
        let quotas = config.rate_limit.quotas.clone();
        let limiter = match &config.rate_limit.backend {
            RateLimitBackend::Off => Limiter::off(),
            RateLimitBackend::Local => Limiter::local(quotas),
            RateLimitBackend::Redis {
                url,
                prefix,
                on_error,
            } => Limiter::redis(url.expose(), &format!("{prefix}:"), quotas, *on_error)
                .await
                .context("setting up the rate limiter")?,
        };
        Ok(Self::new(&config.auth, keys, limiter))
    }

    /// Who is calling, from the request's headers.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        method: &str,
        path: &str,
    ) -> Result<Caller, ApiError> {
        let request_id: Arc<str> = headers
            .get(crate::ops::REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .into();
        match &self.mode {
            Mode::Open => Ok(Caller {
                tenant: registry::DEFAULT_TENANT.into(),
                role: Role::Admin,
                key_id: None,
                request_id,
            }),
            Mode::Keys => {
                let token = token(headers).ok_or_else(|| ApiError::Unauthenticated {
                    code: "unauthenticated",
                    message: format!(
                        "an API key is required: send Authorization: Bearer <key> or {API_KEY_HEADER}"
                    ),
                })?;
                let principal =
                    self.keys
                        .authenticate(token, unix_now())
                        .await
                        .map_err(|e| match e {
                            AuthError::Unavailable(m) => ApiError::Unavailable(m),
                            e => ApiError::Unauthenticated {
                                code: e.code(),
                                message: e.to_string(),
                            },
                        })?;
                Ok(Caller {
                    tenant: principal.tenant,
                    role: principal.role,
                    key_id: Some(principal.key_id),
                    request_id,
                })
            }
            Mode::Gateway(secret) => {
                let signed = verify_gateway(secret, headers, method, path, unix_now())?;
                Ok(Caller {
                    request_id,
                    ..signed
                })
            }
        }
    }

    /// Creates a key of the caller's tenant (admins only), expiring `expires_in_seconds`
    /// from now if given; the answer holds the only copy of the token.
    pub async fn create_key(
        &self,
        caller: &Caller,
        role: &str,
        expires_in_seconds: Option<u64>,
        label: Option<String>,
    ) -> Result<NewKey, ApiError> {
        caller.require(Role::Admin)?;
        let role: Role = role.parse()?;
        let expires_at = expires_in_seconds.map(|secs| unix_now().saturating_add(secs));
        let new = self
            .keys
            .create(&caller.tenant, role, expires_at, label)
            .await?;
        caller.audit("key.create", &new.info.id);
        Ok(new)
    }

    /// The caller's tenant's keys (admins only).
    pub async fn list_keys(&self, caller: &Caller) -> Result<Vec<KeyInfo>, ApiError> {
        caller.require(Role::Admin)?;
        Ok(self.keys.list(&caller.tenant).await?)
    }

    /// Revokes a key of the caller's tenant (admins only); another tenant's is not found.
    pub async fn revoke_key(&self, caller: &Caller, id: &str) -> Result<(), ApiError> {
        caller.require(Role::Admin)?;
        self.keys.revoke(&caller.tenant, id).await?;
        caller.audit("key.revoke", id);
        Ok(())
    }

    /// Waits until `tenant`'s rate limit admits `documents` more (the documents of a batch,
    /// a chunk at a time) and charges them; an unlimited tenant passes at once. Work larger
    /// than the burst is charged in pieces of the burst. Fails only when the limit cannot be
    /// checked (Redis away and the limiter failing closed).
    pub async fn throttle(&self, tenant: &str, documents: usize) -> Result<(), ApiError> {
        let Some(quota) = self.limiter.quota_for(tenant) else {
            return Ok(());
        };
        let mut left = documents;
        while left > 0 {
            let piece = left.min(quota.burst() as usize);
            let n = NonZeroU32::new(piece as u32).expect("a piece is at least one document");
            loop {
                match self
                    .limiter
                    .check_n(tenant, n)
                    .await
                    .map_err(|e| limiter_down(tenant, &e))?
                {
                    None => return Ok(()),
                    Some(d) if d.allowed => break,
                    // A piece never exceeds the burst, so the wait is finite; the cap only
                    // guards against a clock jump.
                    Some(d) => tokio::time::sleep(d.retry_after.min(Duration::from_secs(5))).await,
                }
            }
            left -= piece;
        }
        Ok(())
    }

    /// The rate limiter's decision for `tenant`, with the quota it applied (`None`: not
    /// limited).
    pub async fn limit(&self, tenant: &str) -> Result<Option<(Decision, Quota)>, ApiError> {
        let decision = self
            .limiter
            .check(tenant)
            .await
            .map_err(|e| limiter_down(tenant, &e))?;
        Ok(decision.zip(self.limiter.quota_for(tenant)))
    }
}

/// The limiter could not decide (Redis away, failing closed): 503, and a line in the log.
fn limiter_down(tenant: &str, e: &ratelimit::LimitError) -> ApiError {
    tracing::warn!(tenant, error = %e, "rate limits cannot be checked");
    ApiError::Unavailable(format!("rate limits cannot be checked now: {e}"))
}

/// The middleware in front of every API route: authenticate, rate-limit, then hand the
/// [`Caller`] to the handler. Refusals are problem+json for HTTP and a status for gRPC.
pub async fn guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let grpc = crate::ops::is_grpc(&req);
    let refuse = |e: ApiError, decision: Option<&(Decision, Quota)>| {
        let mut response = if grpc {
            crate::grpc::status(&e).into_http()
        } else {
            e.into_response()
        };
        if let Some((d, q)) = decision {
            rate_headers(response.headers_mut(), d, q);
        }
        response
    };
    let access = &state.access;
    let caller = match access
        .authenticate(req.headers(), req.method().as_str(), req.uri().path())
        .await
    {
        Ok(c) => c,
        Err(e) => {
            metrics::counter!("assay_auth_failures_total", "code" => e.code()).increment(1);
            return refuse(e, None);
        }
    };
    let decision = match access.limit(&caller.tenant).await {
        Ok(d) => d,
        Err(e) => return refuse(e, None),
    };
    if let Some(limited) = decision.as_ref().filter(|(d, _)| !d.allowed) {
        tracing::debug!(tenant = %caller.tenant, "rate limited");
        let retry_after_secs = limited.0.retry_after.as_secs_f64().ceil().max(1.0) as u64;
        return refuse(ApiError::RateLimited { retry_after_secs }, Some(limited));
    }
    req.extensions_mut().insert(caller);
    let mut response = next.run(req).await;
    if let Some((d, q)) = &decision {
        rate_headers(response.headers_mut(), d, q);
    }
    response
}

/// The IETF draft's headers (draft-ietf-httpapi-ratelimit-headers): the policy (`q` requests
/// at once, refilled over `w` seconds) and what is left of it now (`r` requests, full again
/// in `t` seconds).
fn rate_headers(headers: &mut HeaderMap, d: &Decision, quota: &Quota) {
    let secs = |d: Duration| d.as_secs_f64().ceil() as u64;
    let policy = format!(
        "\"{POLICY}\";q={};w={}",
        quota.burst(),
        secs(quota.window()).max(1)
    );
    let now = format!("\"{POLICY}\";r={};t={}", d.remaining, secs(d.reset_after));
    for (name, value) in [("ratelimit-policy", policy), ("ratelimit", now)] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
}

/// The API key in `Authorization: Bearer` or `x-api-key`.
fn token(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, rest) = v.trim().split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| rest.trim())
            .filter(|t| !t.is_empty());
    }
    headers
        .get(API_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The signature a gateway sends (see the module doc), as lowercase hex.
pub fn gateway_signature(
    secret: &str,
    timestamp: u64,
    method: &str,
    path: &str,
    tenant: &str,
    role: &str,
    key_id: &str,
) -> String {
    let tag = gateway_mac(secret, timestamp, method, path, tenant, role, key_id)
        .finalize()
        .into_bytes();
    tag.iter().map(|b| format!("{b:02x}")).collect()
}

fn gateway_mac(
    secret: &str,
    timestamp: u64,
    method: &str,
    path: &str,
    tenant: &str,
    role: &str,
    key_id: &str,
) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(
        format!("assay-gateway-v1\n{timestamp}\n{method}\n{path}\n{tenant}\n{role}\n{key_id}")
            .as_bytes(),
    );
    mac
}

/// Checks a gateway's signed headers at `now` (unix seconds).
fn verify_gateway(
    secret: &Secret,
    headers: &HeaderMap,
    method: &str,
    path: &str,
    now: u64,
) -> Result<Caller, ApiError> {
    let refused = |message: &str| ApiError::Unauthenticated {
        code: "gateway_signature_invalid",
        message: message.to_owned(),
    };
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(tenant), Some(role), Some(timestamp), Some(signature)) = (
        get(TENANT_HEADER),
        get(ROLE_HEADER),
        get(TIMESTAMP_HEADER),
        get(SIGNATURE_HEADER),
    ) else {
        return Err(refused(
            "this engine trusts only its gateway: tenant, role, timestamp and signature headers are required",
        ));
    };
    let key_id = get(KEY_ID_HEADER).unwrap_or("");
    let timestamp: u64 = timestamp
        .parse()
        .map_err(|_| refused("the gateway timestamp is not a number"))?;
    if now.abs_diff(timestamp) > GATEWAY_MAX_SKEW.as_secs() {
        return Err(refused(
            "the gateway signature is too old or from the future",
        ));
    }
    let signature = decode_hex(signature).ok_or_else(|| refused("the signature is not hex"))?;
    gateway_mac(
        secret.expose(),
        timestamp,
        method,
        path,
        tenant,
        role,
        key_id,
    )
    .verify_slice(&signature)
    .map_err(|_| refused("the gateway signature does not verify"))?;
    // Signed, so the gateway vouches for these; still, they must be well-formed.
    registry::model::check_tenant(tenant).map_err(|_| refused("invalid tenant"))?;
    let role: Role = role.parse().map_err(|_| refused("invalid role"))?;
    Ok(Caller {
        tenant: tenant.into(),
        role,
        key_id: (!key_id.is_empty()).then(|| key_id.into()),
        request_id: "".into(),
    })
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn signed(tenant: &str, timestamp: u64, signature: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(TENANT_HEADER, tenant.parse().unwrap());
        h.insert(ROLE_HEADER, "client".parse().unwrap());
        h.insert(TIMESTAMP_HEADER, timestamp.to_string().parse().unwrap());
        h.insert(SIGNATURE_HEADER, signature.parse().unwrap());
        h
    }

    #[test]
    fn a_gateway_signature_verifies_only_as_signed() {
        let secret = Secret::new(SECRET.into());
        let now = 1_800_000_000;
        let sig = gateway_signature(SECRET, now, "POST", "/v1/x", "acme", "client", "");
        let ok = verify_gateway(&secret, &signed("acme", now, &sig), "POST", "/v1/x", now).unwrap();
        assert_eq!((&*ok.tenant, ok.role), ("acme", Role::Client));
        // Another tenant, path, method or a stale time: refused.
        for (tenant, method, path, at) in [
            ("other", "POST", "/v1/x", now),
            ("acme", "GET", "/v1/x", now),
            ("acme", "POST", "/v1/y", now),
            ("acme", "POST", "/v1/x", now + 61),
        ] {
            let e =
                verify_gateway(&secret, &signed(tenant, now, &sig), method, path, at).unwrap_err();
            assert_eq!(e.code(), "gateway_signature_invalid");
        }
        let wrong = gateway_signature(
            "another secret of thirty-two chars",
            now,
            "POST",
            "/v1/x",
            "acme",
            "client",
            "",
        );
        assert!(
            verify_gateway(&secret, &signed("acme", now, &wrong), "POST", "/v1/x", now).is_err()
        );
    }

    #[test]
    fn tokens_come_from_bearer_or_x_api_key() {
        let mut h = HeaderMap::new();
        assert_eq!(token(&h), None);
        h.insert(API_KEY_HEADER, "k1".parse().unwrap());
        assert_eq!(token(&h), Some("k1"));
        h.insert(header::AUTHORIZATION, "bearer k2".parse().unwrap());
        assert_eq!(token(&h), Some("k2"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(token(&h), None);
    }

    #[test]
    fn rate_headers_follow_the_draft() {
        let mut h = HeaderMap::new();
        rate_headers(
            &mut h,
            &Decision {
                allowed: true,
                limit: 10,
                remaining: 9,
                retry_after: Duration::ZERO,
                reset_after: Duration::from_millis(200),
            },
            &Quota::new(5, 10).unwrap(),
        );
        // Ten at once, refilled at five a second: the whole quota refills in 2 s.
        assert_eq!(h["ratelimit-policy"], "\"tenant\";q=10;w=2");
        assert_eq!(h["ratelimit"], "\"tenant\";r=9;t=1");
    }
}
