//! The flow's cap on requests in flight, static or adaptive, and the latency samples the adaptive limit learns from.

use std::sync::atomic::Ordering::Relaxed;

use super::RequestCtx;
use crate::error::ErrorType;
use crate::resilience::adaptive::Sample;

impl RequestCtx {
    /// The flow's cap on requests in flight: `max_concurrent_requests`, its adaptive limit,
    /// or the lower of both; `None` when uncapped. Off, the adaptive limit costs one branch.
    pub(super) fn flow_cap(&self) -> Option<usize> {
        let flow = self.flow();
        let Some(policy) = &flow.adaptive else {
            return flow.max_concurrent;
        };
        let limit = flow.state.resilience.concurrency.limit(policy) as usize;
        Some(flow.max_concurrent.map_or(limit, |cap| cap.min(limit)))
    }

    /// Tell the adaptive limit how long the app took, before the request gives back its
    /// place: the latency to the response head (a slow client's body is not the app's
    /// doing), or the whole wait for a timeout. Requests the app never answered (refused,
    /// unreachable, the client gone) say nothing about its capacity.
    pub(super) fn sample_concurrency(&self, error: Option<ErrorType>) {
        let flow = self.flow();
        let (Some(policy), true) = (&flow.adaptive, self.slots.flow) else {
            return;
        };
        let latency = match (self.upstream, error) {
            (Some(head), _) => head,
            (None, Some(ErrorType::Timeout)) => self.started.elapsed(),
            _ => return,
        };
        let now_ms = self.now_ms();
        let elapsed = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let in_flight = flow.state.in_flight.load(Relaxed);
        let sample = Sample {
            now_ms,
            started_ms: now_ms.saturating_sub(elapsed),
            latency,
            in_flight: u32::try_from(in_flight).unwrap_or(u32::MAX),
        };
        flow.state.resilience.concurrency.record(sample, policy);
    }
}
