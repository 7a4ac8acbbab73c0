//! Phase 4's retry decision, shared by both engines: which failed tries are repeated, after what backoff, within which budget.
//!
//! A flow with `retries:` (more than one attempt) repeats a try that failed:
//! - without an answer, when the failure's verdict allows it (`phases::may_retry`): a
//!   request never sent always, one that may have arrived (a reset or close before any
//!   response byte, a per-try timeout) only for an idempotent method (RFC 9110 §9.2.2);
//! - with an answer whose status is in `retry_on`, for an idempotent method;
//!
//! and only when the request has no body (one that must be read once cannot be sent
//! twice without buffering it: kept simple on purpose). Each retry waits a full-jitter
//! backoff and spends one retry of the flow's budget (`resilience::RetryBudget`): when
//! the budget is spent the last answer or failure stands, so retries never multiply an
//! outage. Flows without retries pay one branch ([`Tries::start`] returns `None`).

use std::future::Future;
use std::time::Duration;

use http::Method;

use super::RequestCtx;
use super::phases::may_retry;
use crate::error::{Error, ErrorType, Retry};
use crate::resilience::{RetryPolicy, RetryResult};

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

    /// Tries after the first that were sent (`http.request.resend_count`).
    pub fn resends(&self) -> u32 {
        self.made.saturating_sub(1)
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

/// Run `attempt` once (after the request's injected fault, if any), or (with `tries`) as often as the policy and budget allow,
/// each try bounded by the per-try timeout and separated by the backoff. `status` reads
/// an answer's status, to judge it against `retry_on`. Returns the last try's result
/// and how many tries were resent.
pub async fn exchange<T, F, Fut>(
    ctx: &RequestCtx,
    tries: Option<Tries>,
    status: fn(&T) -> u16,
    mut attempt: F,
) -> (Result<T, Error>, u32)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    if let Some(fault) = ctx.fault() {
        if let Some(delay) = fault.delay {
            // Inside the flow's timeout: a delay past it is a real timeout.
            tokio::time::sleep(delay).await;
        }
        if let Some(status) = fault.abort {
            return (Err(injected(status)), 0);
        }
    }
    let Some(mut tries) = tries else {
        return (attempt().await, 0);
    };
    loop {
        tries.made += 1;
        let result = match tries.policy.per_try_timeout {
            Some(limit) => tokio::time::timeout(limit, attempt())
                .await
                .unwrap_or_else(|_| Err(try_timed_out(limit))),
            None => attempt().await,
        };
        let wait = match &result {
            Ok(answer) => tries.after_status(ctx, status(answer)),
            Err(failure) => tries.after_failure(ctx, failure),
        };
        let Some(wait) = wait else {
            return (result, tries.resends());
        };
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
