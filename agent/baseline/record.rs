//! `redline baseline record`: turn the request shapes a running Redline sampled
//! (`GET /api/baseline/shapes`, with `baseline.record.enabled`) into a workload file.
//!
//! Flow weights are the request counts Redline saw, so the workload replays the observed
//! mix across flows; identical shapes are merged into one request with a weight. The proxy
//! never keeps credentials, and this side drops them again in case an older or misconfigured
//! Redline sent any, so the file can be committed and shared.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use super::BaselineError;
use super::workload::{FlowLoad, RequestShape, WORKLOAD_VERSION, WorkloadFile};
use crate::config::NEVER_RECORDED;

/// What `/api/baseline/shapes` answers.
#[derive(Debug, Deserialize)]
struct Snapshot {
    enabled: bool,
    #[serde(default)]
    redact_headers: Vec<String>,
    #[serde(default)]
    redact_query_params: Vec<String>,
    flows: Vec<FlowShapes>,
}

#[derive(Debug, Deserialize)]
struct FlowShapes {
    flow: String,
    seen: u64,
    shapes: Vec<RecordedShape>,
}

#[derive(Debug, Deserialize)]
struct RecordedShape {
    method: String,
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<String>,
}

/// Fetch the shapes from `admin` (base URL) and write the workload to `out`.
pub async fn record(
    admin: &str,
    token: Option<&str>,
    config: Option<&Path>,
    out: &Path,
) -> Result<usize, BaselineError> {
    let url = format!("{}/api/baseline/shapes", admin.trim_end_matches('/'));
    let body = fetch(&url, token).await?;
    let snapshot: Snapshot = serde_json::from_slice(&body)
        .map_err(|e| BaselineError::Target(format!("{url}: unexpected answer: {e}")))?;
    if !snapshot.enabled {
        return Err(BaselineError::Usage(format!(
            "{url}: recording is off; set `baseline: {{ record: {{ enabled: true }} }}` in the \
             Redline config, restart it, and let traffic through first"
        )));
    }
    let file = workload(&snapshot, admin, config.map(Path::to_path_buf));
    if file.flows.is_empty() {
        return Err(BaselineError::Usage(format!(
            "{url}: no flow has seen a request yet; send traffic through Redline first"
        )));
    }
    let text = serde_json::to_string_pretty(&file).expect("a workload always serialises");
    std::fs::write(out, text + "\n").map_err(|source| BaselineError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    Ok(file.flows.len())
}

async fn fetch(url: &str, token: Option<&str>) -> Result<Bytes, BaselineError> {
    let fail = |m: String| BaselineError::Target(format!("{url}: {m}"));
    let mut request = http::Request::get(url);
    if let Some(token) = token {
        request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(Full::new(Bytes::new()))
        .map_err(|e| fail(e.to_string()))?;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = client
        .request(request)
        .await
        .map_err(|e| fail(format!("cannot reach the admin listener: {e}")))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| fail(e.to_string()))?
        .to_bytes();
    if !status.is_success() {
        return Err(fail(format!(
            "{status}: {} (an admin token goes in REDLINE_ADMIN_TOKEN)",
            String::from_utf8_lossy(&body)
        )));
    }
    Ok(body)
}

fn workload(snapshot: &Snapshot, admin: &str, config: Option<PathBuf>) -> WorkloadFile {
    let never = |h: &str| {
        let h = h.to_ascii_lowercase();
        NEVER_RECORDED.contains(&h.as_str()) || snapshot.redact_headers.contains(&h)
    };
    let flows = snapshot
        .flows
        .iter()
        .filter(|f| f.seen > 0 && !f.shapes.is_empty())
        .map(|f| FlowLoad {
            name: f.flow.clone(),
            weight: f.seen as f64,
            timeout: None,
            thresholds: Vec::new(),
            requests: merge(&f.shapes, &never),
        })
        .collect();
    WorkloadFile {
        version: WORKLOAD_VERSION,
        note: Some(note(snapshot, admin)),
        config,
        flows,
    }
}

/// A shape's identity: method, path, kept headers and body.
type ShapeKey = (String, String, Vec<(String, String)>, Option<String>);

/// Identical shapes become one request whose weight is how often it was sampled.
fn merge(shapes: &[RecordedShape], never: &dyn Fn(&str) -> bool) -> Vec<RequestShape> {
    let mut merged: BTreeMap<ShapeKey, f64> = BTreeMap::new();
    for s in shapes {
        let headers: Vec<(String, String)> = s
            .headers
            .iter()
            .filter(|(k, _)| !never(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // Redline keeps bodies of idempotent methods only; a POST body from elsewhere is
        // business data (an order, a payment) and stays out of a file meant to be shared.
        let idempotent =
            http::Method::from_bytes(s.method.as_bytes()).is_ok_and(|m| m.is_idempotent());
        let body = s.body.clone().filter(|_| idempotent);
        *merged
            .entry((s.method.clone(), s.path.clone(), headers, body))
            .or_default() += 1.0;
    }
    merged
        .into_iter()
        .map(|((method, path, headers, body), weight)| RequestShape {
            method,
            path,
            headers: headers.into_iter().collect(),
            body,
            weight,
        })
        .collect()
}

fn note(snapshot: &Snapshot, admin: &str) -> String {
    let at = humantime::format_rfc3339_seconds(SystemTime::now());
    format!(
        "Recorded by `redline baseline record` from {admin} at {at}. Flow weights are the requests \
         each flow received; request weights how often each shape was sampled. Secrets removed: \
         the headers {} and the redact.headers [{}] are never recorded, only the headers listed in \
         baseline.record.headers are kept, and the values of the query parameters [{}] are \
         replaced by REDACTED. Request bodies are kept only for idempotent methods (never POST or \
         PATCH), only JSON and form bodies up to baseline.record.body_limit bytes, with the \
         values of those query parameter names replaced by REDACTED wherever they appear.",
        NEVER_RECORDED.join(", "),
        snapshot.redact_headers.join(", "),
        snapshot.redact_query_params.join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_merge_and_credentials_never_pass() {
        let snapshot: Snapshot = serde_json::from_str(
            r#"{"enabled":true,"redact_headers":["x-api-key"],"redact_query_params":["token"],
                "flows":[{"flow":"a","seen":40,"shapes":[
                  {"method":"GET","path":"/a?token=REDACTED","headers":{"accept":"*/*","Authorization":"Bearer x","x-api-key":"k"}},
                  {"method":"GET","path":"/a?token=REDACTED","headers":{"accept":"*/*"}},
                  {"method":"PUT","path":"/c","headers":{},"body":"{\"q\":1}"},
                  {"method":"POST","path":"/b","headers":{},"body":"card=4242"}]},
                  {"flow":"idle","seen":0,"shapes":[]}]}"#,
        )
        .unwrap();
        let file = workload(&snapshot, "http://127.0.0.1:9901", None);
        assert_eq!(file.flows.len(), 1, "flows without traffic are left out");
        let flow = &file.flows[0];
        assert_eq!(flow.weight, 40.0);
        assert_eq!(flow.requests.len(), 3);
        let body = |m: &str| {
            flow.requests
                .iter()
                .find(|r| r.method == m)
                .unwrap()
                .body
                .clone()
        };
        assert_eq!(body("PUT").as_deref(), Some(r#"{"q":1}"#));
        assert_eq!(body("POST"), None, "POST bodies are never kept");
        assert_eq!(flow.requests[0].weight, 2.0);
        assert_eq!(
            flow.requests[0].headers.keys().collect::<Vec<_>>(),
            ["accept"]
        );
        assert!(file.note.unwrap().contains("REDACTED"));
    }
}
