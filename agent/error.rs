//! Redline's one error model: the kind of a failure (the bounded `error_type` values), its cause chain, and whether trying again may help.
//!
//! A request's outcome, an export to a collector and a notification to a receiver fail
//! in the same few ways — the other side is unreachable, broke the exchange, did not
//! answer in time, or refused what it was sent — so one [`Error`] carries them all:
//! its [`ErrorType`] becomes the `error_type` label (and picks the status Redline
//! answers with), [`Retry`] says whether another try may help, and the source chain
//! keeps the cause for the log instead of flattening it into a string.
//!
//! The verdict describes the failure, not a policy: whoever would try again (the proxy
//! on a reused connection, the notifier's queue, the OTLP exporter)
//! decides with [`Retry::allows`] whether its request may be repeated. The same failure
//! gets the same verdict whoever the other side is: a connect that failed sent nothing
//! ([`Retry::Always`]); a timeout, a broken exchange and a refusal that invites another
//! try (429, 503, gRPC `UNAVAILABLE`…) happened after the request may have arrived
//! ([`Retry::IfIdempotent`]); a refusal that would repeat, or an answer that came but
//! was unusable, is [`Retry::Never`].

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime};

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
    /// broken request body): the client's fault, so not an error of the flow. Also a
    /// request Redline itself could not build (an export, a notification).
    BadRequest,
    /// The client stopped sending its request body for longer than the body read
    /// timeout (a slow-POST attack, or a stalled client): its fault, not the flow's.
    ClientTimeout,
    /// Redline refused the request to protect the upstream: no upstream connection came
    /// free within the queue's limits. Counts as an error: users were refused.
    Overloaded,
    /// A flow's `access` rule needs a caller and the request carried no valid credential
    /// (401). The client's doing: not an error of the flow.
    Unauthenticated,
    /// A verified caller the flow's `access` rule does not admit (403). Not an error of
    /// the flow either: the app was never asked.
    Forbidden,
    /// The flow's circuit is open: Redline refused the request without calling the app,
    /// which failed recently. Counts as an error: users were refused.
    CircuitOpen,
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
            ErrorType::ClientTimeout => "client_timeout".into(),
            ErrorType::Overloaded => "overloaded".into(),
            ErrorType::Unauthenticated => "unauthenticated".into(),
            ErrorType::Forbidden => "forbidden".into(),
            ErrorType::CircuitOpen => "circuit_open".into(),
        }
    }

    /// Whether this outcome counts toward the error rate: 5xx and Redline's own failures,
    /// never the client's (gone, malformed, too slow with its body, refused by `access`).
    /// `rules_export` mirrors this list in PromQL.
    pub fn is_error(self) -> bool {
        !matches!(
            self,
            ErrorType::None
                | ErrorType::ClientClosed
                | ErrorType::BadRequest
                | ErrorType::ClientTimeout
                | ErrorType::Unauthenticated
                | ErrorType::Forbidden
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
            7 => ErrorType::ClientTimeout,
            8 => ErrorType::Overloaded,
            9 => ErrorType::Unauthenticated,
            10 => ErrorType::Forbidden,
            11 => ErrorType::CircuitOpen,
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

impl Retry {
    /// Whether a request may be tried again after this verdict: `idempotent` says that
    /// repeating it is harmless (RFC 9110 §9.2.2 for a proxied request, whose body must
    /// also be at hand; an export or a notification, which carries its own id, always is).
    pub fn allows(self, idempotent: bool) -> bool {
        match self {
            Retry::Always => true,
            Retry::IfIdempotent => idempotent,
            Retry::Never => false,
        }
    }
}

/// A failure, with its kind, its retry verdict and its cause.
#[derive(Debug)]
pub struct Error {
    kind: ErrorType,
    retry: Retry,
    what: Cow<'static, str>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
    after: Option<Duration>,
    answered: Option<u16>,
}

impl Error {
    /// A failure of `kind`, described by `what`; never retried unless [`Error::retry`] says so.
    pub fn new(kind: ErrorType, what: impl Into<Cow<'static, str>>) -> Self {
        Error {
            kind,
            retry: Retry::Never,
            what: what.into(),
            source: None,
            after: None,
            answered: None,
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

    /// The same failure, with the delay the other side asked for before another try
    /// (HTTP `Retry-After`, gRPC `RetryInfo`).
    #[must_use]
    pub fn after(mut self, delay: Option<Duration>) -> Self {
        self.after = delay;
        self
    }

    /// The same failure, answered to the client with `status` (an injected abort).
    #[must_use]
    pub fn answered(mut self, status: u16) -> Self {
        self.answered = Some(status);
        self
    }

    /// The status the failure is answered with, when it names one.
    pub fn answered_status(&self) -> Option<u16> {
        self.answered
    }

    /// The delay the other side asked for before another try, when it named one.
    pub fn retry_after(&self) -> Option<Duration> {
        self.after
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

    /// `who` (`"the collector"`, `"the receiver"`) answered with the failure status
    /// `status`; the caller sets the verdict, since which statuses invite another try
    /// is the protocol's to say.
    pub fn status(who: &str, status: u16) -> Self {
        Error::new(ErrorType::Status, format!("{who} answered HTTP {status}"))
    }

    /// A request through hyper-util's client that got no answer, described by `what`:
    /// a failed connect (TCP or TLS) sent nothing, so it is `UpstreamUnavailable` and
    /// may always be tried again; any other failure (a reset, a pooled connection closed
    /// under it) is `UpstreamError` after the request may have arrived.
    pub fn request_failed(
        what: impl Into<Cow<'static, str>>,
        e: hyper_util::client::legacy::Error,
    ) -> Self {
        let (kind, retry) = match e.is_connect() {
            true => (ErrorType::UpstreamUnavailable, Retry::Always),
            false => (ErrorType::UpstreamError, Retry::IfIdempotent),
        };
        Error::new(kind, what).caused_by(e).retry(retry)
    }

    /// The description followed by every cause down the chain (`what: cause: cause`),
    /// for a log line: `Display` stops at the first cause, and hyper's errors keep the
    /// useful part (`Connection refused`) two levels down.
    pub fn chain(&self) -> Chain<'_> {
        Chain(self)
    }
}

/// `Retry-After` as delay-seconds or an HTTP date; a date in the past means "now".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Full-jitter exponential backoff: uniform in `[0, min(cap, base × 2^attempt)]`, so that
/// many senders failing at once do not come back at once.
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let ceiling = ceiling(attempt, base, cap);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(fastrand::u64(0..=millis))
}

/// The upper bound `backoff` draws from for this attempt.
pub fn ceiling(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(cap).min(cap)
}

/// [`Error::chain`]'s rendering.
#[derive(Debug)]
pub struct Chain<'a>(&'a Error);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.what)?;
        let mut cause = std::error::Error::source(self.0);
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
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
    fn the_chain_shows_every_cause() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("client error (Connect)")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = Error::new(ErrorType::UpstreamUnavailable, "cannot reach the collector")
            .caused_by(Outer(io));
        assert_eq!(
            e.to_string(),
            "cannot reach the collector: client error (Connect)"
        );
        assert_eq!(
            e.chain().to_string(),
            "cannot reach the collector: client error (Connect): refused"
        );
        assert_eq!(
            Error::status("the collector", 503).chain().to_string(),
            "the collector answered HTTP 503"
        );
    }

    #[test]
    fn a_verdict_allows_a_try_by_idempotency() {
        assert!(Retry::Always.allows(false));
        assert!(Retry::IfIdempotent.allows(true));
        assert!(!Retry::IfIdempotent.allows(false));
        assert!(!Retry::Never.allows(true));
        let e = Error::status("the receiver", 400);
        assert_eq!(
            (e.kind(), e.retry_verdict()),
            (ErrorType::Status, Retry::Never)
        );
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
            ErrorType::ClientTimeout,
            ErrorType::Overloaded,
            ErrorType::Unauthenticated,
            ErrorType::Forbidden,
            ErrorType::CircuitOpen,
        ] {
            assert_eq!(ErrorType::from_code(kind.code()), kind);
        }
    }
}
