//! A small HTTP/1.1 client on hyper's connection API, for what the binary itself sends: the
//! `--server` commands' requests and OpenTelemetry's span batches. One connection per
//! request, plain `http://` only, a deadline on the whole exchange and a cap on the answer.
//!
//! reqwest did this before; it brought a second HTTP stack into the binary (its own
//! connection pool and HTTP/2 client) for a few requests per run, 0.40 MB of the
//! stripped binary (docs/benchmarks.md). The server already links hyper, which does the HTTP
//! here too; this module only connects, sends and reads.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not an `http://host[:port]/...` URL.
    #[error("{0:?} is not an http:// URL (https is not supported)")]
    Url(String),
    /// Connecting, sending or reading failed.
    #[error("{0}")]
    Io(String),
    /// The answer did not come within the deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The answer's body is longer than the cap.
    #[error("the answer is longer than {0} bytes")]
    TooLarge(usize),
}

/// Sends `request` (whose URI is absolute, `http://host[:port]/path`) and reads the whole
/// answer, of any status, within `timeout`; a body longer than `max_body` is refused.
pub async fn send(
    request: Request<Bytes>,
    timeout: Duration,
    max_body: usize,
) -> Result<Response<Bytes>, ClientError> {
    tokio::time::timeout(timeout, exchange(request, max_body))
        .await
        .map_err(|_| ClientError::Timeout(timeout))?
}

async fn exchange(
    request: Request<Bytes>,
    max_body: usize,
) -> Result<Response<Bytes>, ClientError> {
    let (mut parts, body) = request.into_parts();
    let url = parts.uri.to_string();
    let (authority, origin) = match (parts.uri.scheme(), parts.uri.authority()) {
        (Some(s), Some(a)) if *s == Scheme::HTTP => (
            a.clone(),
            parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        ),
        _ => return Err(ClientError::Url(url)),
    };
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| ClientError::Io(format!("cannot connect to {authority}: {e}")))?;
    // Requests are small and answered at once: no need to wait to fill a segment.
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ClientError::Io(e.to_string()))?;
    // The connection is driven beside the request; it ends when the answer has been read
    // and the sender dropped.
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "HTTP client connection ended with an error");
        }
    });
    // HTTP/1.1 sends the path in the request line and the authority in `Host`.
    parts.uri = Uri::from(origin);
    let host_header =
        HeaderValue::from_str(authority.as_str()).map_err(|_| ClientError::Url(url.clone()))?;
    parts.headers.insert(HOST, host_header);
    parts
        .headers
        .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    let response = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await
        .map_err(|e| ClientError::Io(format!("{url}: {e}")))?;
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, max_body)
        .collect()
        .await
        .map_err(|e| match e.downcast::<http_body_util::LengthLimitError>() {
            Ok(_) => ClientError::TooLarge(max_body),
            Err(e) => ClientError::Io(format!("reading the answer from {url}: {e}")),
        })?
        .to_bytes();
    Ok(Response::from_parts(parts, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::{get, put};
    use http::Method;
    use tokio::net::TcpListener;

    const SHORT: Duration = Duration::from_secs(5);

    /// A server on a port of its own: `PUT /echo` answers the body with the `Host` it saw,
    /// `GET /big` answers 1 MiB, `GET /missing` 404.
    async fn serve() -> String {
        let app = Router::new()
            .route(
                "/echo",
                put(|headers: http::HeaderMap, body: Bytes| async move {
                    let host = headers[HOST].to_str().unwrap().to_owned();
                    format!("{host} {}", String::from_utf8_lossy(&body))
                }),
            )
            .route("/big", get(|| async { vec![b'x'; 1 << 20] }))
            .route(
                "/missing",
                get(|| async { (http::StatusCode::NOT_FOUND, "no such thing") }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    fn request(method: Method, url: &str, body: &'static str) -> Request<Bytes> {
        Request::builder()
            .method(method)
            .uri(url)
            .body(Bytes::from_static(body.as_bytes()))
            .unwrap()
    }

    #[tokio::test]
    async fn sends_the_body_and_reads_the_answer_of_any_status() {
        let base = serve().await;
        let r = send(
            request(Method::PUT, &format!("{base}/echo"), "hello"),
            SHORT,
            1024,
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
        let authority = base.trim_start_matches("http://");
        assert_eq!(r.body().as_ref(), format!("{authority} hello").as_bytes());

        let r = send(
            request(Method::GET, &format!("{base}/missing"), ""),
            SHORT,
            1024,
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(r.body().as_ref(), b"no such thing");
    }

    #[tokio::test]
    async fn an_answer_longer_than_the_cap_is_refused() {
        let base = serve().await;
        let big = format!("{base}/big");
        let r = send(request(Method::GET, &big, ""), SHORT, 1 << 20).await;
        assert_eq!(r.unwrap().body().len(), 1 << 20);
        let r = send(request(Method::GET, &big, ""), SHORT, (1 << 20) - 1).await;
        assert!(
            matches!(r, Err(ClientError::TooLarge(n)) if n == (1 << 20) - 1),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn a_server_that_never_answers_runs_into_the_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepts, reads nothing, answers nothing.
        let held = tokio::spawn(async move { listener.accept().await });
        let wait = Duration::from_millis(200);
        let r = send(
            request(Method::GET, &format!("http://{addr}/"), ""),
            wait,
            1024,
        )
        .await;
        assert!(
            matches!(r, Err(ClientError::Timeout(d)) if d == wait),
            "{r:?}"
        );
        held.abort();
    }

    #[tokio::test]
    async fn refuses_what_it_cannot_send_to() {
        for url in ["https://127.0.0.1:1/", "/relative", "ftp://127.0.0.1/"] {
            let r = send(request(Method::GET, url, ""), SHORT, 1024).await;
            assert!(matches!(r, Err(ClientError::Url(_))), "{url}: {r:?}");
        }
        // A port nothing listens on: bound, then closed.
        let addr = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let r = send(
            request(Method::GET, &format!("http://{addr}/"), ""),
            SHORT,
            1024,
        )
        .await;
        assert!(
            matches!(&r, Err(ClientError::Io(m)) if m.contains("cannot connect")),
            "{r:?}"
        );
    }
}
