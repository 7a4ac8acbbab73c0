//! JSON over HTTP for the admin API: responses, errors and bounded JSON request bodies.

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{Value, json};

/// A response with this status, content type and body.
pub fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A JSON response.
pub fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    text(status, "application/json", body.to_string())
}

/// A JSON error `{"error": message}`.
pub fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json_response(status, &json!({ "error": message }))
}

/// Largest admin request body accepted; admin payloads are tiny.
pub const MAX_BODY: usize = 64 * 1024;

/// Read a JSON request body of at most `MAX_BODY` bytes into `T`, waiting at most `pause`
/// (`limits.body_read_timeout`) for each piece of it, as the proxy does.
///
/// Bad input is the caller's mistake, so every failure is a 4xx with a message
/// saying what was wrong (unknown fields are rejected by `T`'s serde attributes).
pub async fn read_json<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
    pause: std::time::Duration,
) -> Result<T, Response<Full<Bytes>>> {
    use http_body::Body as _;
    use http_body_util::BodyExt;
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body larger than {MAX_BODY} bytes"),
        )
    };
    // Refuse from Content-Length before waiting for a body that will be refused anyway.
    if req.body().size_hint().lower() > MAX_BODY as u64 {
        return Err(too_large());
    }
    let mut body = http_body_util::Limited::new(req.into_body(), MAX_BODY);
    let mut bytes = Vec::new();
    loop {
        // A client that stalls its body must not hold the connection for ever.
        let Ok(frame) = tokio::time::timeout(pause, body.frame()).await else {
            let mut resp = error(
                StatusCode::REQUEST_TIMEOUT,
                &format!(
                    "no request body bytes for {} (limits.body_read_timeout)",
                    humantime::format_duration(pause)
                ),
            );
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return Err(resp);
        };
        match frame {
            None => break,
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    bytes.extend_from_slice(data);
                }
            }
            Some(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(too_large());
            }
            Some(Err(_)) => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "could not read the request body",
                ));
            }
        }
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("invalid JSON body: {e}")))
}
