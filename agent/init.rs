//! `redline init`: fetch the config a running Redline learned from its traffic (`GET /api/proposal`) and write it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;

/// The admin API gets this long to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What was written, for the summary line.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Flows proposed.
    pub flows: usize,
    /// Requests observed.
    pub requests: u64,
    /// Of which the flows match.
    pub covered: u64,
}

/// Why `redline init` failed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// `--from` is not an http(s) URL.
    #[error(
        "invalid --from {0:?}; expected the admin URL of a running Redline, e.g. http://127.0.0.1:9901"
    )]
    BadUrl(String),
    /// No HTTP client could be built.
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    /// Nothing answered.
    #[error("cannot reach {url}: {message}")]
    Unreachable {
        /// The proposal URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// It answered, but not with a proposal.
    #[error("{url} answered {status}: {body}")]
    Refused {
        /// The proposal URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The answer is not the JSON expected (an older Redline, or not Redline at all).
    #[error("{url} did not answer with a proposal (is it a Redline with `GET /api/proposal`?)")]
    NotAProposal {
        /// The proposal URL.
        url: String,
    },
    /// The file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Fetch the proposal from the admin listener at `from` and write its YAML to `out` (or
/// stdout). The admin token (`REDLINE_ADMIN_TOKEN`) is sent when set, for `protect_reads`.
pub async fn run(from: &str, out: Option<&Path>) -> Result<Summary, InitError> {
    let url = proposal_url(from)?;
    let proposal = fetch(&url).await?;
    let yaml = proposal["yaml"]
        .as_str()
        .ok_or_else(|| InitError::NotAProposal { url: url.clone() })?;
    match out {
        Some(path) => write_atomically(path, yaml)?,
        None => print!("{yaml}"),
    }
    Ok(Summary {
        flows: proposal["flows"].as_array().map_or(0, Vec::len),
        requests: proposal["requests"].as_u64().unwrap_or(0),
        covered: proposal["covered"].as_u64().unwrap_or(0),
    })
}

fn proposal_url(from: &str) -> Result<String, InitError> {
    let base = from.trim().trim_end_matches('/');
    let uri: http::Uri = base.parse().map_err(|_| InitError::BadUrl(from.into()))?;
    let web = matches!(uri.scheme_str(), Some("http" | "https"));
    if !web || uri.authority().is_none() {
        return Err(InitError::BadUrl(from.into()));
    }
    Ok(format!("{base}/api/proposal"))
}

async fn fetch(url: &str) -> Result<Value, InitError> {
    let client = crate::notify::http::client().map_err(|e| InitError::Client(e.to_string()))?;
    let mut request = http::Request::get(url);
    if let Ok(token) = std::env::var(crate::auth::TOKEN_ENV) {
        request = request.header("authorization", format!("Bearer {}", token.trim()));
    }
    let request = request
        .body(Full::new(Bytes::new()))
        .map_err(|_| InitError::BadUrl(url.into()))?;
    let unreachable = |message: String| InitError::Unreachable {
        url: url.into(),
        message,
    };
    let response = tokio::time::timeout(TIMEOUT, client.request(request))
        .await
        .map_err(|_| unreachable(format!("no answer within {TIMEOUT:?}")))?
        .map_err(|e| unreachable(e.to_string()))?;
    let status = response.status().as_u16();
    let body = tokio::time::timeout(TIMEOUT, response.into_body().collect())
        .await
        .map_err(|_| unreachable("the answer did not finish".into()))?
        .map_err(|e| unreachable(e.to_string()))?
        .to_bytes();
    if status != 200 {
        let text = String::from_utf8_lossy(&body).chars().take(300).collect();
        return Err(InitError::Refused {
            url: url.into(),
            status,
            body: text,
        });
    }
    serde_json::from_slice(&body).map_err(|_| InitError::NotAProposal { url: url.into() })
}

/// Write next to `path`, then rename: a Redline watching `path` never reads half a file.
fn write_atomically(path: &Path, text: &str) -> Result<(), InitError> {
    let failed = |source| InitError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".redline-init.tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text).map_err(failed)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        failed(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_takes_an_admin_base_url() {
        let url = proposal_url("http://127.0.0.1:9901/").unwrap();
        assert_eq!(url, "http://127.0.0.1:9901/api/proposal");
        assert!(matches!(
            proposal_url("127.0.0.1:9901"),
            Err(InitError::BadUrl(_))
        ));
        assert!(matches!(proposal_url("ftp://h"), Err(InitError::BadUrl(_))));
    }
}
