//! Redline's one error model: the kind of a failure (the bounded `error_type` values), its cause chain, and whether trying again may help.
//!
//! A request's outcome, an export to a collector and a notification to a receiver fail
//! in the same few ways — the other side is unreachable, broke the exchange, did not
//! answer in time, or refused what it was sent — so one [`Error`] carries them all:
//! its [`ErrorType`] becomes the `error_type` label (and picks the status Redline
//! answers with), [`Retry`] says whether another try may help, and the source chain
//! keeps the cause for the log instead of flattening it into a string.

use std::borrow::Cow;
use std::fmt;

/// Bounded `error_type` values (PRODUCT.md §4). A 5xx from the upstream is `Status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// Success, or a 4xx: no error.
    None,
    /// No response headers within the flow's timeout.
    Timeout,
    /// Upstream refused or unreachable.
    UpstreamUnavailable,
    /// Upstream reset the connection or sent a broken response.
    UpstreamError,
    /// The client went away before the response was complete.
    ClientClosed,
    /// The upstream answered with a 5xx status; the label is the status as text.
    Status,
    /// Redline refused the client's request (bad framing, Host, target or method; a
    /// broken request body): the client's fault, so not an error of the flow.
    BadRequest,
}

impl ErrorType {
    /// The label value, given the response status (only used for `Status`).
    pub fn label(self, status: u16) -> std::borrow::Cow<'static, str> {
        match self {
            ErrorType::None => "".into(),
            ErrorType::Timeout => "timeout".into(),
            ErrorType::UpstreamUnavailable => "upstream_unavailable".into(),
            ErrorType::UpstreamError => "upstream_error".into(),
            ErrorType::ClientClosed => "client_closed".into(),
            ErrorType::Status => status.to_string().into(),
            ErrorType::BadRequest => "bad_request".into(),
        }
    }

    /// Whether this outcome counts toward the error rate (5xx and Redline's own failures).
    pub fn is_error(self) -> bool {
        !matches!(
            self,
            ErrorType::None | ErrorType::ClientClosed | ErrorType::BadRequest
        )
    }

    pub(crate) fn code(self) -> u32 {
        self as u32
    }

    pub(crate) fn from_code(code: u32) -> ErrorType {
        match code {
            1 => ErrorType::Timeout,
            2 => ErrorType::UpstreamUnavailable,
            3 => ErrorType::UpstreamError,
            4 => ErrorType::ClientClosed,
            5 => ErrorType::Status,
            6 => ErrorType::BadRequest,
            _ => ErrorType::None,
        }
    }
}

/// Whether a failed try may be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Nothing reached the other side: always safe to try again.
    Always,
    /// The other side may have acted on it: only an idempotent request (RFC 9110
    /// §9.2.2) that can be sent again.
    IfIdempotent,
    /// Part of an answer came, or the failure would repeat: never.
    Never,
}

/// A failure, with its kind, its retry verdict and its cause.
#[derive(Debug)]
pub struct Error {
    kind: ErrorType,
    retry: Retry,
    what: Cow<'static, str>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    /// A failure of `kind`, described by `what`; never retried unless [`Error::retry`] says so.
    pub fn new(kind: ErrorType, what: impl Into<Cow<'static, str>>) -> Self {
        Error {
            kind,
            retry: Retry::Never,
            what: what.into(),
            source: None,
        }
    }

    /// The same failure, caused by `source`.
    #[must_use]
    pub fn caused_by(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The same failure, with this retry verdict.
    #[must_use]
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// What kind of failure this is (the `error_type` label).
    pub fn kind(&self) -> ErrorType {
        self.kind
    }

    /// Whether another try may help.
    pub fn retry_verdict(&self) -> Retry {
        self.retry
    }

    /// The description without its cause.
    pub fn what(&self) -> &str {
        &self.what
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {source}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cause_is_kept_and_shown() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = Error::new(
            ErrorType::UpstreamUnavailable,
            "cannot connect to the upstream",
        )
        .caused_by(io)
        .retry(Retry::Always);
        assert_eq!(e.to_string(), "cannot connect to the upstream: refused");
        assert_eq!(e.kind().label(0), "upstream_unavailable");
        assert_eq!(e.retry_verdict(), Retry::Always);
        let source = std::error::Error::source(&e).unwrap();
        assert!(source.downcast_ref::<std::io::Error>().is_some());
    }

    #[test]
    fn labels_round_trip_through_their_codes() {
        for kind in [
            ErrorType::None,
            ErrorType::Timeout,
            ErrorType::UpstreamUnavailable,
            ErrorType::UpstreamError,
            ErrorType::ClientClosed,
            ErrorType::Status,
            ErrorType::BadRequest,
        ] {
            assert_eq!(ErrorType::from_code(kind.code()), kind);
        }
    }
}
