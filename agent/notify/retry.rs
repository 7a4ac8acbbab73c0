//! Which delivery failures are worth retrying, how long to wait, and when to give up.
//!
//! A failed attempt is a [`crate::error::Error`] (a send with no answer, from `http.rs`,
//! or a refusal status, from [`refusal`]); whether to try again is its retry verdict,
//! read once in [`verdict`], so the notifier and the OTLP exporter agree on what a
//! failure means.

use std::time::{Duration, SystemTime};

use crate::error::{Error, Retry};
pub use crate::error::{backoff, ceiling, parse_retry_after};

/// Notifications may be sent again whatever became of the last try: webhooks carry
/// `webhook-id` and PagerDuty events a dedup key for the receiver to drop a repeat, an
/// Alertmanager push is idempotent, and a rare duplicate Slack message beats a lost alert.
const IDEMPOTENT: bool = true;

/// What one delivery attempt means for the notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The receiver took it (2xx).
    Delivered,
    /// Try again later: network error, timeout, 408, 429 or 5xx. `after` is the
    /// receiver's `Retry-After`, when it sent one.
    Retry {
        /// Delay the receiver asked for.
        after: Option<Duration>,
    },
    /// Retrying cannot help: other 4xx, 3xx (redirects are not followed), bad configuration.
    Fail,
}

/// Classify an HTTP response status; `retry_after` is the raw `Retry-After` header.
pub fn classify(status: u16, retry_after: Option<&str>, now: SystemTime) -> Verdict {
    match refusal(status) {
        None => Verdict::Delivered,
        Some(failure) => verdict(
            &failure,
            retry_after.and_then(|v| parse_retry_after(v, now)),
        ),
    }
}

/// A receiver's answer as a failure, `None` for a 2xx: 408, 429 and 5xx invite another
/// try; any other status (4xx, 3xx, since redirects are not followed) would fail again.
pub fn refusal(status: u16) -> Option<Error> {
    let retry = match status {
        200..=299 => return None,
        408 | 429 | 500..=599 => Retry::IfIdempotent,
        _ => Retry::Never,
    };
    Some(Error::status("the receiver", status).retry(retry))
}

/// What `failure` means for the notification: another try (after `after`, the
/// receiver's `Retry-After`) when its retry verdict allows one, else give up.
pub fn verdict(failure: &Error, after: Option<Duration>) -> Verdict {
    match failure.retry_verdict().allows(IDEMPOTENT) {
        true => Verdict::Retry { after },
        false => Verdict::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_SECS: u64 = 1_700_000_000;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_SECS)
    }

    #[test]
    fn transient_statuses_are_retried_and_client_errors_are_not() {
        for status in [408, 429, 500, 502, 503, 504, 599] {
            assert_eq!(
                classify(status, None, now()),
                Verdict::Retry { after: None },
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 410, 413, 422, 301, 302] {
            assert_eq!(classify(status, None, now()), Verdict::Fail, "{status}");
        }
        for status in [200, 201, 202, 204] {
            assert_eq!(
                classify(status, None, now()),
                Verdict::Delivered,
                "{status}"
            );
        }
    }

    #[test]
    fn failures_are_retried_by_their_error_verdict() {
        use crate::error::ErrorType;
        let refused = refusal(503).unwrap();
        assert_eq!(refused.kind(), ErrorType::Status);
        assert_eq!(refused.retry_verdict(), Retry::IfIdempotent);
        assert_eq!(refused.to_string(), "the receiver answered HTTP 503");
        assert_eq!(refusal(404).unwrap().retry_verdict(), Retry::Never);
        assert!(refusal(204).is_none());
        let after = Some(Duration::from_secs(3));
        for retry in [Retry::Always, Retry::IfIdempotent] {
            let e = Error::new(ErrorType::UpstreamError, "network error").retry(retry);
            assert_eq!(verdict(&e, after), Verdict::Retry { after });
        }
        let e = Error::new(ErrorType::BadRequest, "cannot build the request");
        assert_eq!(verdict(&e, after), Verdict::Fail);
    }

    #[test]
    fn retry_after_is_honoured_only_where_retrying() {
        let after = Some(Duration::from_secs(7));
        assert_eq!(classify(429, Some("7"), now()), Verdict::Retry { after });
        assert_eq!(classify(503, Some(" 7 "), now()), Verdict::Retry { after });
        assert_eq!(classify(400, Some("7"), now()), Verdict::Fail);
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        assert_eq!(
            parse_retry_after("120", now()),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("0", now()), Some(Duration::ZERO));
        let in_90s = httpdate::fmt_http_date(now() + Duration::from_secs(90));
        assert_eq!(
            parse_retry_after(&in_90s, now()),
            Some(Duration::from_secs(90))
        );
        let past = httpdate::fmt_http_date(now() - Duration::from_secs(90));
        assert_eq!(parse_retry_after(&past, now()), Some(Duration::ZERO));
        // 1700000000 is Tue, 14 Nov 2023 22:13:20 GMT.
        let fixed = "Tue, 14 Nov 2023 22:13:50 GMT";
        assert_eq!(
            parse_retry_after(fixed, now()),
            Some(Duration::from_secs(30))
        );
        for junk in ["", "soon", "-5", "1.5", "Tue, 99 Nov 2023"] {
            assert_eq!(parse_retry_after(junk, now()), None, "{junk:?}");
        }
    }

    #[test]
    fn backoff_stays_within_full_jitter_bounds() {
        let (base, cap) = (Duration::from_secs(1), Duration::from_secs(60));
        let expected = [1, 2, 4, 8, 16, 32, 60, 60, 60];
        for (attempt, secs) in expected.iter().enumerate() {
            let attempt = attempt as u32;
            assert_eq!(ceiling(attempt, base, cap), Duration::from_secs(*secs));
            for _ in 0..200 {
                assert!(backoff(attempt, base, cap) <= Duration::from_secs(*secs));
            }
        }
        assert_eq!(ceiling(1000, base, cap), cap);
        // Jitter is real: many draws at the cap are not all equal.
        let draws: std::collections::HashSet<_> = (0..50).map(|_| backoff(10, base, cap)).collect();
        assert!(draws.len() > 10);
    }
}
