//! The service's one error type: every failure a client can see, with its HTTP status, its
//! gRPC code and a stable machine-readable code. Internals are logged, never sent.

use axum::http::StatusCode;
use engine::PipelineError;
use registry::{KeyError, RegistryError};

/// A failed request, as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (bad JSON, bad name, bad definition).
    #[error("{message}")]
    BadRequest {
        /// Stable code (`syntax`, `duplicate_key`, `too_deep`, `invalid_request`, ...).
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A registration was refused: it does not compile or a reference does not resolve.
    #[error("{0}")]
    Rejected(String),
    /// No such schema or pipeline (or version).
    #[error("{0}")]
    NotFound(String),
    /// A schema still in use cannot be deleted.
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than the limit.
    #[error("the request body is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body's content type is not one this endpoint takes.
    #[error("unsupported content type {0:?}")]
    UnsupportedMediaType(String),
    /// The requested output encoding cannot hold this result (a number JCS or MessagePack
    /// cannot represent), or the transform failed on this document.
    #[error("{message}")]
    Unprocessable {
        /// Stable code (`not_representable`, `transform_error`, `transform_timeout`, ...).
        code: &'static str,
        /// What happened.
        message: String,
    },
    /// Too much work in flight: retry later.
    #[error("the service is at capacity; retry after {retry_after_secs} s")]
    Overloaded {
        /// Suggested wait.
        retry_after_secs: u64,
    },
    /// The registry cannot be reached.
    #[error("{0}")]
    Unavailable(String),
    /// The request's deadline passed.
    #[error("the request's deadline passed")]
    DeadlineExceeded,
    /// No valid credentials: a missing, malformed, unknown, revoked or expired key, or a
    /// gateway signature that does not verify.
    #[error("{message}")]
    Unauthenticated {
        /// Stable code (`unauthenticated`, `key_invalid`, `key_expired`, ...).
        code: &'static str,
        /// Why, without any part of the credentials.
        message: String,
    },
    /// Authenticated, but the role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The tenant is over its rate limit: retry later.
    #[error("rate limit exceeded; retry after {retry_after_secs} s")]
    RateLimited {
        /// Suggested wait, rounded up to whole seconds.
        retry_after_secs: u64,
    },
    /// A bug. The details are in the log, not in the response.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The stable code clients can switch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. } | Self::Unprocessable { code, .. } => code,
            Self::Rejected(_) => "rejected",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "in_use",
            Self::TooLarge { .. } => "too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Overloaded { .. } => "overloaded",
            Self::Unavailable(_) => "registry_unavailable",
            Self::DeadlineExceeded => "deadline_exceeded",
            Self::Unauthenticated { code, .. } => code,
            Self::Forbidden(_) => "forbidden",
            Self::RateLimited { .. } => "rate_limited",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Rejected(_) | Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Overloaded { .. } | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            Self::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The gRPC status code.
    pub fn grpc_code(&self) -> tonic::Code {
        use tonic::Code;
        match self {
            Self::BadRequest { .. } | Self::UnsupportedMediaType(_) => Code::InvalidArgument,
            Self::Rejected(_) | Self::Unprocessable { .. } => Code::FailedPrecondition,
            Self::NotFound(_) => Code::NotFound,
            Self::Conflict(_) => Code::FailedPrecondition,
            Self::TooLarge { .. } => Code::ResourceExhausted,
            Self::Overloaded { .. } | Self::Unavailable(_) => Code::Unavailable,
            Self::DeadlineExceeded => Code::DeadlineExceeded,
            Self::Unauthenticated { .. } => Code::Unauthenticated,
            Self::Forbidden(_) => Code::PermissionDenied,
            Self::RateLimited { .. } => Code::ResourceExhausted,
            Self::Internal => Code::Internal,
        }
    }

    /// `Retry-After` for responses that invite a retry.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::Overloaded { retry_after_secs } | Self::RateLimited { retry_after_secs } => {
                Some(*retry_after_secs)
            }
            Self::Unavailable(_) => Some(1),
            _ => None,
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Invalid(m) => Self::BadRequest {
                code: "invalid_request",
                message: m,
            },
            RegistryError::Parse(engine::ParseError::TooLarge { limit, .. }) => {
                Self::TooLarge { limit }
            }
            RegistryError::Parse(p) => Self::BadRequest {
                code: p.code(),
                message: format!("the document is not acceptable JSON: {p}"),
            },
            RegistryError::Rejected(m) => Self::Rejected(m),
            e @ RegistryError::NotFound { .. } => Self::NotFound(e.to_string()),
            e @ RegistryError::InUse { .. } => Self::Conflict(e.to_string()),
            e @ RegistryError::Unavailable(_) => Self::Unavailable(e.to_string()),
            RegistryError::Corrupt(m) => {
                tracing::error!(error = %m, "registry data is corrupt");
                Self::Internal
            }
        }
    }
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Invalid(m) => Self::BadRequest {
                code: "invalid_request",
                message: m,
            },
            KeyError::NotFound(m) => Self::NotFound(m),
            e @ KeyError::Unavailable(_) => Self::Unavailable(e.to_string()),
            KeyError::Corrupt(m) => {
                tracing::error!(error = %m, "an API key record is corrupt");
                Self::Internal
            }
        }
    }
}

impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::Parse(p) => match p {
                engine::ParseError::TooLarge { limit, .. } => Self::TooLarge { limit },
                p => Self::BadRequest {
                    code: p.code(),
                    message: p.to_string(),
                },
            },
            e @ (PipelineError::Transform(_) | PipelineError::Encode(_)) => Self::Unprocessable {
                code: e.code(),
                message: e.to_string(),
            },
            // A stored pipeline that no longer compiles is the registry's problem, not the
            // client's; the registry refuses such writes, so this is a bug.
            e @ (PipelineError::Spec(_)
            | PipelineError::Schema { .. }
            | PipelineError::Compile(_)) => {
                tracing::error!(error = %e, "a registered pipeline failed to build");
                Self::Internal
            }
        }
    }
}
