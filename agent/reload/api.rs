//! `POST /api/reload`: the admin handler.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::json;

use super::{Outcome, ReloadError, ReloadState, reload_now};
use crate::audit::Trigger;
use crate::state::Shared;

/// `POST /api/reload`: reload now and answer with what changed, or why not.
///
/// The body must be empty or `{}`: anything else is a client mistake worth a 4xx
/// rather than being silently ignored.
pub async fn handle_api(
    shared: Arc<Shared>,
    state: Arc<ReloadState>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    use http_body::Body as _;
    if !req.body().is_end_stream() {
        let pause = shared.runtime.load().config.limits.body_read_timeout;
        if let Err(refused) = crate::http_json::read_json::<ReloadRequest>(req, pause).await {
            return refused;
        }
    }
    let task = tokio::task::spawn_blocking(move || reload_now(&shared, &state, Trigger::Api));
    match task.await {
        Ok(Ok(Outcome::Applied(changes))) => {
            let mut body = serde_json::to_value(&changes).unwrap_or_default();
            body["result"] = json!("success");
            crate::http_json::json_response(StatusCode::OK, &body)
        }
        Ok(Ok(Outcome::Unchanged)) => {
            crate::http_json::json_response(StatusCode::OK, &json!({ "result": "unchanged" }))
        }
        Ok(Err(ReloadError::NoConfigFile)) => {
            crate::http_json::error(StatusCode::CONFLICT, &ReloadError::NoConfigFile.to_string())
        }
        Ok(Err(ReloadError::Rejected(error))) => crate::http_json::json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({ "result": "failure", "error": error }),
        ),
        Err(_) => crate::http_json::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the reload task failed; the running config is unchanged",
        ),
    }
}

/// The only accepted `POST /api/reload` body: `{}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReloadRequest {}
