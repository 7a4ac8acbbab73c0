//! Retries of a failed OTLP export, as the OTLP specification asks ("Failures" for OTLP/HTTP and OTLP/gRPC).
//!
//! A failure whose verdict allows another try (HTTP 429/502/503/504, gRPC UNAVAILABLE,
//! RESOURCE_EXHAUSTED with `RetryInfo`, …, no answer in time, a connection that failed
//! or broke) is sent again after the delay the collector asked for (`Retry-After`,
//! `RetryInfo`), else after full-jitter exponential backoff, so a fleet of sidecars
//! does not come back in step when a collector restarts.
//!
//! Bounded on every side. Time: all tries of one batch and the waits between them end
//! within the signal's export timeout (`OTEL_BSP_EXPORT_TIMEOUT`,
//! `OTEL_METRIC_EXPORT_TIMEOUT`); a wait that would end past it is not started, the batch
//! is dropped and counted at once. Memory: the batch is compressed and framed once and
//! each try sends the same reference-counted pieces; while the exporter waits, the
//! request path keeps filling the bounded queue, and a full queue drops (counted) rather
//! than waits. Shutdown: no wait outlives the drain signal, so the final flush is not held
//! up by a collector that is down.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::transport::{Payload, Transport};
use crate::error::{Error, backoff};
use crate::shutdown::Watch;

/// An export may be sent again whatever became of the last try: the collector treats a
/// repeated export like any other (the OTLP spec tells clients to retry), at worst
/// storing a batch twice, which beats losing it.
const IDEMPOTENT: bool = true;

/// First backoff ceiling; doubled on each try.
const BASE: Duration = Duration::from_millis(500);

/// Largest backoff ceiling.
const CAP: Duration = Duration::from_secs(8);

/// Send `payload` through `transport`, trying again while the failure allows it and the
/// export timeout leaves room; `on_retry` is called before each new try (for the count).
/// Returns the collector's answer, or the last failure.
pub async fn export(
    transport: &Transport,
    payload: Payload,
    stop: &Watch,
    mut on_retry: impl FnMut(),
) -> Result<Bytes, Error> {
    let deadline = Instant::now() + transport.target().export_timeout;
    let body = transport.prepare(payload)?;
    let mut attempt = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let error = match transport.send(&body, left).await {
            Ok(answer) => return Ok(answer),
            Err(error) => error,
        };
        let Some(wait) = next_wait(&error, attempt, deadline, stop) else {
            return Err(error);
        };
        tokio::select! {
            biased;
            () = stop.signaled() => return Err(error),
            () = tokio::time::sleep(wait) => {}
        }
        tracing::debug!(error = %error.chain(), ?wait, "OTLP export failed; trying again.");
        on_retry();
        attempt += 1;
    }
}

/// How long to wait before another try, or `None` to give up: the failure does not allow
/// one, the exporter is stopping, or the wait and a try would not fit before `deadline`.
fn next_wait(error: &Error, attempt: u32, deadline: Instant, stop: &Watch) -> Option<Duration> {
    if !error.retry_verdict().allows(IDEMPOTENT) || stop.is_signaled() {
        return None;
    }
    let wait = error
        .retry_after()
        .unwrap_or_else(|| backoff(attempt, BASE, CAP));
    // The delay is the collector's to choose; one past what a clock can hold is past it too.
    let fits = Instant::now()
        .checked_add(wait)
        .is_some_and(|end| end < deadline);
    fits.then_some(wait)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorType, Retry};
    use crate::shutdown;

    fn failure(retry: Retry, after: Option<Duration>) -> Error {
        Error::new(ErrorType::Status, "the collector answered HTTP 503")
            .retry(retry)
            .after(after)
    }

    #[tokio::test(start_paused = true)]
    async fn the_verdict_the_collectors_delay_and_the_deadline_decide() {
        let (_signal, watch) = shutdown::channel();
        let soon = Instant::now() + Duration::from_secs(5);
        let asked = failure(Retry::IfIdempotent, Some(Duration::from_secs(1)));
        assert_eq!(
            next_wait(&asked, 0, soon, &watch),
            Some(Duration::from_secs(1))
        );
        let never = failure(Retry::Never, None);
        assert_eq!(next_wait(&never, 0, soon, &watch), None);
        let too_late = failure(Retry::Always, Some(Duration::from_secs(6)));
        assert_eq!(
            next_wait(&too_late, 0, soon, &watch),
            None,
            "past the deadline"
        );
        for attempt in 0..40 {
            let wait = next_wait(&failure(Retry::Always, None), attempt, soon, &watch);
            assert!(wait.is_none_or(|w| w <= CAP), "{attempt}: {wait:?}");
        }
    }

    /// A collector may ask for any delay; one past what a clock can hold drops the batch
    /// like any other wait past the deadline, instead of panicking the exporter.
    #[tokio::test(start_paused = true)]
    async fn an_absurd_delay_from_the_collector_is_past_the_deadline() {
        let (_signal, watch) = shutdown::channel();
        let soon = Instant::now() + Duration::from_secs(5);
        let absurd = failure(Retry::Always, Some(Duration::from_secs(u64::MAX)));
        assert_eq!(next_wait(&absurd, 0, soon, &watch), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopping_exporter_does_not_wait() {
        let (signal, watch) = shutdown::channel();
        let far = Instant::now() + Duration::from_secs(60);
        drop(signal);
        let asked = failure(Retry::Always, Some(Duration::from_secs(1)));
        assert_eq!(next_wait(&asked, 0, far, &watch), None);
    }
}
