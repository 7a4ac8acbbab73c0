//! Phase 4's retry decision, shared by both engines: which failed tries are repeated, after what backoff, within which budget.
//!
//! A flow with `retries:` (more than one attempt) repeats a try that failed:
//! - without an answer, when the failure's verdict allows it (`phases::may_retry`): a
//!   request never sent always, one that may have arrived (a reset or close before any
//!   response byte, a per-try timeout) only for an idempotent method (RFC 9110 §9.2.2);
//! - with an answer whose status is in `retry_on`, for an idempotent method;
//!
//! and only when the request can be sent again as it was: on the fast path its whole body
//! is already in the buffer sent upstream; on the hyper engine only a request without a
//! body (a streamed body is read once and not buffered). Each retry waits a full-jitter
//! backoff and spends one retry of the flow's budget (`resilience::RetryBudget`): when
//! the budget is spent the last answer or failure stands, so retries never multiply an
//! outage. Flows without retries pay one branch ([`Tries::start`] returns `None`).
//!
//! Each try is its own CLIENT span (OpenTelemetry HTTP semantic conventions): a resend
//! gets a new span id, which its trace headers name as the upstream's parent, and
//! [`Sent`] tells the request's span state what went upstream ([`record`]).

use std::future::Future;
use std::time::{Duration, Instant};

use http::Method;

use super::RequestCtx;
use super::phases::may_retry;
use crate::error::{Error, ErrorType, Retry};
use crate::resilience::{RetryPolicy, RetryResult};
use crate::telemetry::EarlierTry;

/// One request's tries under its flow's retry policy.
#[derive(Debug)]
pub struct Tries {
    policy: RetryPolicy,
    /// Tries made so far (the first included).
    made: u32,
    idempotent: bool,
    /// The request has no body: it can be sent again as it was.
    replayable: bool,
}

impl Tries {
    /// The tries of a request of `ctx`'s flow, or `None` when the flow does not retry.
    /// Counts the request toward the flow's retry budget.
    pub fn start(ctx: &RequestCtx, method: &Method, bodyless: bool) -> Option<Tries> {
        let policy = ctx.flow().retry?;
        ctx.flow().state.resilience.budget.deposit(ctx.now_ms());
        Some(Tries {
            policy,
            made: 0,
            idempotent: method.is_idempotent(),
            replayable: bodyless,
        })
    }

    /// After a try that got no answer: the backoff before the next try, or `None`.
    fn after_failure(&mut self, ctx: &RequestCtx, failure: &Error) -> Option<Duration> {
        // Refused by Redline's own gate after its queue wait: another try would queue again.
        let eligible = self.replayable
            && failure.kind() != ErrorType::Overloaded
            && may_retry(failure, self.idempotent, true);
        self.decide(ctx, eligible)
    }

    /// After a try answered with `status`: the backoff before the next try, or `None`.
    fn after_status(&mut self, ctx: &RequestCtx, status: u16) -> Option<Duration> {
        let eligible = self.replayable && self.idempotent && self.policy.retries_status(status);
        self.decide(ctx, eligible)
    }

    fn decide(&mut self, ctx: &RequestCtx, eligible: bool) -> Option<Duration> {
        if !eligible {
            return None;
        }
        let state = &ctx.flow().state.resilience;
        if self.made >= self.policy.attempts {
            state.count(RetryResult::AttemptsExhausted);
            return None;
        }
        let p = &self.policy;
        if !state
            .budget
            .withdraw(ctx.now_ms(), p.budget_ratio, p.budget_floor)
        {
            state.count(RetryResult::BudgetExhausted);
            return None;
        }
        state.count(RetryResult::Retried);
        let nth = self.made - 1;
        Some(crate::error::backoff(nth, p.backoff_base, p.backoff_max))
    }
}

/// A try that got no response head within the per-try timeout. It may have arrived, so
/// only an idempotent request is tried again.
pub fn try_timed_out(limit: Duration) -> Error {
    let took = humantime::format_duration(limit);
    Error::new(
        ErrorType::Timeout,
        format!("upstream sent no response headers within the per-try timeout of {took}"),
    )
    .retry(Retry::IfIdempotent)
}

/// An injected abort: answered with `status`, recorded as the app's answer would be (a
/// 5xx is the flow's error), never retried.
fn injected(status: u16) -> Error {
    let kind = if status >= 500 {
        ErrorType::Status
    } else {
        ErrorType::None
    };
    Error::new(kind, "fault injected (abort)").answered(status)
}

/// What went upstream for one request, for its CLIENT spans. Kept up to date while the
/// tries run, so a flow timeout that cuts them short still leaves it right.
#[derive(Debug, Default)]
pub enum Sent {
    /// One try, started when the engine said (`RequestSpan::upstream_sent`).
    #[default]
    Once,
    /// Nothing: an injected abort answered.
    Nothing,
    /// One try, started after an injected delay.
    Delayed(Instant),
    /// Resent: the tries before the last, and the last's start and CLIENT span id.
    Again {
        earlier: Vec<EarlierTry>,
        start: Instant,
        span_id: [u8; 8],
    },
}

impl Sent {
    /// A resend starts at `start` after `previous`: returns its new CLIENT span id.
    fn resend(&mut self, previous: EarlierTry, start: Instant) -> [u8; 8] {
        let id = crate::trace::new_span_id();
        match self {
            Sent::Again {
                earlier,
                start: last_start,
                span_id,
            } => {
                earlier.push(previous);
                (*last_start, *span_id) = (start, id);
            }
            _ => {
                *self = Sent::Again {
                    earlier: vec![previous],
                    start,
                    span_id: id,
                }
            }
        }
        id
    }
}

/// Tell the request's span state what went upstream: the last try's span id becomes the
/// trace's CLIENT span (the one its trace headers named).
pub fn record(ctx: &mut RequestCtx, sent: Sent) {
    match sent {
        Sent::Once => {}
        Sent::Nothing => ctx.span.upstream_not_sent(),
        Sent::Delayed(at) => ctx.span.upstream_sent_at(at),
        Sent::Again {
            earlier,
            start,
            span_id,
        } => {
            ctx.trace.client_span_id = span_id;
            ctx.span.resent(earlier, start);
        }
    }
}

/// Run `attempt` once (after the request's injected fault, if any), or (with `tries`) as
/// often as the policy and budget allow, each try bounded by the per-try timeout and
/// separated by the backoff. `status` reads an answer's status, to judge it against
/// `retry_on`. `attempt(None)` sends the request as rewritten; `attempt(Some(id))` is a
/// resend whose trace headers must name CLIENT span `id` as the upstream's parent (asked
/// only when spans are captured: otherwise nothing would show the new id). `sent` says
/// what went upstream, also when this future is dropped part-way. Returns the last try's result.
pub async fn exchange<T, F, Fut>(
    ctx: &RequestCtx,
    tries: Option<Tries>,
    status: fn(&T) -> u16,
    mut attempt: F,
    sent: &mut Sent,
) -> Result<T, Error>
where
    F: FnMut(Option<[u8; 8]>) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    if tries.is_none() && ctx.fault().is_none() {
        return attempt(None).await;
    }
    // Boxed: the fault's and the backoff's timers, the per-try timeout and the try
    // records would otherwise enlarge every connection's task, retrying or not.
    Box::pin(exchange_with_policy(ctx, tries, status, attempt, sent)).await
}

/// [`exchange`] for a request with a fault or a retry policy.
async fn exchange_with_policy<T, F, Fut>(
    ctx: &RequestCtx,
    tries: Option<Tries>,
    status: fn(&T) -> u16,
    mut attempt: F,
    sent: &mut Sent,
) -> Result<T, Error>
where
    F: FnMut(Option<[u8; 8]>) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    if let Some(fault) = ctx.fault() {
        if let Some(delay) = fault.delay {
            // Inside the flow's timeout: a delay past it is a real timeout.
            tokio::time::sleep(delay).await;
            *sent = Sent::Delayed(Instant::now());
        }
        if let Some(status) = fault.abort {
            *sent = Sent::Nothing;
            return Err(injected(status));
        }
    }
    let Some(mut tries) = tries else {
        return attempt(None).await;
    };
    let spans = ctx.span.is_captured();
    let mut resend = None;
    let mut span_id = ctx.trace.client_span_id;
    loop {
        tries.made += 1;
        let start = Instant::now();
        if let Some(previous) = resend.take() {
            span_id = sent.resend(previous, start);
        }
        let fresh = (tries.made > 1 && spans).then_some(span_id);
        let result = match tries.policy.per_try_timeout {
            Some(limit) => tokio::time::timeout(limit, attempt(fresh))
                .await
                .unwrap_or_else(|_| Err(try_timed_out(limit))),
            None => attempt(fresh).await,
        };
        let (wait, answered, error) = match &result {
            Ok(answer) => {
                let code = status(answer);
                (tries.after_status(ctx, code), Some(code), ErrorType::None)
            }
            Err(failure) => (tries.after_failure(ctx, failure), None, failure.kind()),
        };
        let Some(wait) = wait else {
            return result;
        };
        if spans {
            resend = Some(EarlierTry {
                span_id,
                start,
                end: Instant::now(),
                status: answered,
                error,
            });
        }
        // The answer being retried is dropped here: its connection closes (or, on the fast
        // path, is kept when its whole body already arrived).
        drop(result);
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_try_timeout_is_retried_only_when_idempotent() {
        let e = try_timed_out(Duration::from_millis(300));
        assert_eq!(e.kind(), ErrorType::Timeout);
        assert!(may_retry(&e, true, true));
        assert!(!may_retry(&e, false, true));
        assert!(e.what().contains("300ms"), "{}", e.what());
    }
}
