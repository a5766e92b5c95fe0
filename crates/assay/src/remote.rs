//! `assay schema ...` / `assay pipeline ...` against a running server (`--server URL`), over
//! its HTTP API: the same operations and output as on a local store.

use crate::admin::Operation;
use registry::Kind;

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

/// Runs `op` on the server at `base` (e.g. `http://127.0.0.1:8080`), returning what to print.
pub async fn execute(base: &str, kind: Kind, op: Operation) -> Result<Vec<String>, RemoteError> {
    let client = reqwest::Client::new();
    let kinds = match kind {
        Kind::Schema => "schemas",
        Kind::Pipeline => "pipelines",
    };
    let base = base.trim_end_matches('/');
    let request = match &op {
        Operation::Put { name, body } => client
            .put(format!("{base}/v1/{kinds}/{name}"))
            .header("content-type", "application/json")
            .body(body.clone()),
        Operation::Get {
            name,
            version: Some(v),
        } => client.get(format!("{base}/v1/{kinds}/{name}/versions/{v}")),
        Operation::Get {
            name,
            version: None,
        } => client.get(format!("{base}/v1/{kinds}/{name}")),
        Operation::List => client.get(format!("{base}/v1/{kinds}")),
        Operation::Delete { name } => client.delete(format!("{base}/v1/{kinds}/{name}")),
    };
    let response = request.send().await.map_err(|e| RemoteError {
        status: None,
        message: format!("cannot reach {base}: {e}"),
    })?;
    let status = response.status();
    let text = response.text().await.map_err(|e| RemoteError {
        status: Some(status.as_u16()),
        message: format!("reading the response: {e}"),
    })?;
    if !status.is_success() {
        let detail = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|p| p.get("detail").and_then(|d| d.as_str()).map(str::to_owned))
            .unwrap_or(text);
        return Err(RemoteError {
            status: Some(status.as_u16()),
            message: detail,
        });
    }
    Ok(match op {
        Operation::Delete { .. } => Vec::new(),
        // The API answers 201 for a new version and 200 for an identical document; print
        // what the local commands print.
        Operation::Put { .. } => {
            let mut out =
                serde_json::from_str::<serde_json::Value>(&text).map_err(|e| RemoteError {
                    status: Some(status.as_u16()),
                    message: format!("unexpected answer {text:?}: {e}"),
                })?;
            if let Some(o) = out.as_object_mut() {
                o.insert("created".into(), (status.as_u16() == 201).into());
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
