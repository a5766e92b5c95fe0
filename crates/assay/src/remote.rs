//! `assay schema ...`, `assay pipeline ...` and `assay keys ...` against a running server
//! (`--server URL`, with `--api-key`), over its HTTP API: the same operations and output as on
//! a local store.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use registry::Kind;

use crate::admin::{KeyOperation, Operation, Printed};

/// A request the server refused or could not answer.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RemoteError {
    /// The HTTP status, if the server answered.
    pub status: Option<u16>,
    /// The server's `detail` (RFC 9457), or what went wrong on the way.
    pub message: String,
}

impl RemoteError {
    /// Whether the server refused the request itself (4xx), as opposed to failing or not
    /// answering.
    pub fn is_refusal(&self) -> bool {
        self.status.is_some_and(|s| (400..500).contains(&s))
    }
}

/// Runs `op` on the server at `base` (e.g. `http://127.0.0.1:8080`) with `api_key`,
/// returning what to print.
pub async fn execute(
    base: &str,
    api_key: Option<&str>,
    kind: Kind,
    op: Operation,
) -> Result<Vec<String>, RemoteError> {
    let kinds = match kind {
        Kind::Schema => "schemas",
        Kind::Pipeline => "pipelines",
        Kind::Key => "keys",
    };
    let base = base.trim_end_matches('/');
    let request = match &op {
        Operation::Put { name, body } => Call::json(
            Method::PUT,
            format!("{base}/v1/{kinds}/{name}"),
            body.clone(),
        ),
        Operation::Get {
            name,
            version: Some(v),
        } => Call::get(format!("{base}/v1/{kinds}/{name}/versions/{v}")),
        Operation::Get {
            name,
            version: None,
        } => Call::get(format!("{base}/v1/{kinds}/{name}")),
        Operation::List => Call::get(format!("{base}/v1/{kinds}")),
        Operation::Delete { name } => Call {
            method: Method::DELETE,
            ..Call::get(format!("{base}/v1/{kinds}/{name}"))
        },
    };
    let (status, text) = send(base, request, api_key).await?;
    Ok(match op {
        Operation::Delete { .. } => Vec::new(),
        // The API answers 201 for a new version and 200 for an identical document; print
        // what the local commands print.
        Operation::Put { .. } => {
            let mut out =
                serde_json::from_str::<serde_json::Value>(&text).map_err(|e| RemoteError {
                    status: Some(status),
                    message: format!("unexpected answer {text:?}: {e}"),
                })?;
            if let Some(o) = out.as_object_mut() {
                o.insert("created".into(), (status == 201).into());
            }
            vec![out.to_string()]
        }
        Operation::List => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Array(items)) => items.iter().map(|i| i.to_string()).collect(),
            _ => vec![text.trim().to_owned()],
        },
        _ => vec![text.trim().to_owned()],
    })
}

/// One request to the server.
struct Call {
    method: Method,
    url: String,
    /// A JSON body, if any.
    body: Option<Bytes>,
}

impl Call {
    fn get(url: String) -> Self {
        Self {
            method: Method::GET,
            url,
            body: None,
        }
    }

    fn json(method: Method, url: String, body: impl Into<Bytes>) -> Self {
        Self {
            method,
            url,
            body: Some(body.into()),
        }
    }
}

/// How long the server has to answer one command.
const TIMEOUT: Duration = Duration::from_secs(60);
/// The longest answer read (a listing of many schemas, a large schema).
const MAX_ANSWER_BYTES: usize = 256 << 20;

/// Sends `call` with the API key, returning the status and text of a successful answer,
/// and the problem's `detail` as the error of any other.
async fn send(base: &str, call: Call, api_key: Option<&str>) -> Result<(u16, String), RemoteError> {
    let unsent = |message: String| RemoteError {
        status: None,
        message,
    };
    let mut request = http::Request::builder().method(call.method).uri(&call.url);
    if let Some(key) = api_key {
        request = request.header(AUTHORIZATION, format!("Bearer {key}"));
    }
    if call.body.is_some() {
        request = request.header(CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(call.body.unwrap_or_default())
        .map_err(|e| unsent(format!("cannot send to {}: {e}", call.url)))?;
    let response = server::client::send(request, TIMEOUT, MAX_ANSWER_BYTES)
        .await
        .map_err(|e| unsent(format!("cannot reach {base}: {e}")))?;
    let status = response.status().as_u16();
    let text = String::from_utf8(response.into_body().to_vec()).map_err(|e| RemoteError {
        status: Some(status),
        message: format!("reading the response: {e}"),
    })?;
    if !(200..300).contains(&status) {
        let detail = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|p| p.get("detail").and_then(|d| d.as_str()).map(str::to_owned))
            .unwrap_or(text);
        return Err(RemoteError {
            status: Some(status),
            message: detail,
        });
    }
    Ok((status, text))
}

/// Runs a key operation on the server at `base`, for the API key's own tenant.
pub async fn keys(
    base: &str,
    api_key: Option<&str>,
    op: KeyOperation,
) -> Result<Printed, RemoteError> {
    let base = base.trim_end_matches('/');
    let request = match &op {
        KeyOperation::Create {
            role,
            expires_in,
            label,
        } => {
            let mut body = serde_json::Map::new();
            body.insert("role".into(), role.clone().into());
            if let Some(d) = expires_in {
                body.insert("expires_in_seconds".into(), d.as_secs().max(1).into());
            }
            if let Some(l) = label {
                body.insert("label".into(), l.clone().into());
            }
            Call::json(
                Method::POST,
                format!("{base}/v1/keys"),
                serde_json::Value::Object(body).to_string(),
            )
        }
        KeyOperation::List => Call::get(format!("{base}/v1/keys")),
        KeyOperation::Revoke { id } => Call {
            method: Method::DELETE,
            ..Call::get(format!("{base}/v1/keys/{id}"))
        },
    };
    let (status, text) = send(base, request, api_key).await?;
    let unexpected = |e: &dyn std::fmt::Display| RemoteError {
        status: Some(status),
        message: format!("unexpected answer {text:?}: {e}"),
    };
    Ok(match op {
        KeyOperation::Create { .. } => {
            let created: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| unexpected(&e))?;
            let token = created["key"]
                .as_str()
                .ok_or_else(|| unexpected(&"no key"))?
                .to_owned();
            let info: registry::KeyInfo = registry::KeyInfo {
                id: created["id"].as_str().unwrap_or("").to_owned(),
                tenant: created["tenant"].as_str().unwrap_or("").to_owned(),
                role: created["role"]
                    .as_str()
                    .unwrap_or("")
                    .parse()
                    .map_err(|e| unexpected(&e))?,
                created_at: created["created_at"].as_u64().unwrap_or(0),
                expires_at: created["expires_at"].as_u64(),
                label: created["label"].as_str().map(str::to_owned),
            };
            Printed {
                note: Some(crate::admin::created_note(&info)),
                lines: vec![token],
            }
        }
        KeyOperation::List => Printed {
            lines: match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(serde_json::Value::Array(items)) => {
                    items.iter().map(|i| i.to_string()).collect()
                }
                _ => vec![text.trim().to_owned()],
            },
            note: None,
        },
        KeyOperation::Revoke { .. } => Printed::default(),
    })
}
