//! The per-request context: started when a request arrives, finished exactly once, where it is measured.
//!
//! Every way a request can end (response body complete, upstream failure,
//! client gone) goes through [`RequestCtx::finish`], so metrics, windows and
//! the access log cannot disagree.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime};

use http::HeaderValue;

use crate::access::{Credential, Decision, Identity, Verdict, decide};
use crate::config::Rule;
use crate::error::{Error, ErrorType, Retry};
use crate::metrics::{ActiveGuard, Exemplar, RouteMetrics, method_index};
use crate::resilience::{Admission, Fault, Verdict as Outcome};
use crate::state::{FlowRuntime, Runtime, Shared};
use crate::stats::Sample;
use crate::telemetry::Telemetry;
use crate::trace::TraceContext;

mod concurrency;
mod records;
mod shape;

/// Status recorded when the client left before any response was sent (nginx's convention).
pub const CLIENT_CLOSED_STATUS: u16 = 499;

/// One request's measurements, from arrival to the last response byte.
pub struct RequestCtx {
    shared: Arc<Shared>,
    telemetry: Option<Arc<Telemetry>>,
    runtime: Arc<Runtime>,
    flow: Option<usize>,
    route_metrics: Arc<RouteMetrics>,
    method: http::Method,
    method_idx: usize,
    uri: http::Uri,
    client: SocketAddr,
    /// `x-request-id` sent upstream and echoed to the client.
    pub request_id: HeaderValue,
    /// The trace this request belongs to.
    pub trace: TraceContext,
    /// Span state for OTLP export: `tracestate`, CLIENT span start, captured headers.
    pub span: crate::telemetry::RequestSpan,
    started: Instant,
    started_wall: SystemTime,
    upstream: Option<Duration>,
    status: Option<u16>,
    // Created only when the request has a body: most requests never need it.
    bytes_in: Option<Arc<super::request_body::BodyProgress>>,
    bytes_out: u64,
    finished: bool,
    /// Places taken among capped requests in flight, given back at `finish`.
    slots: Slots,
    /// The caller the flow's access rule verified, if any (forwarded upstream when allowed).
    pub identity: Option<Arc<Identity>>,
    /// The flow's access decision, when the flow has a rule (boxed, as the fields below
    /// that most requests never set: every byte here is moved several times a request).
    pub decision: Option<Box<Decision>>,
    /// Let through the flow's circuit breaker (`Some(true)`: as its probe); its outcome
    /// is reported at `finish`. `None` when the flow has no breaker or refused it.
    circuit: Option<bool>,
    /// Its response may be kept for `stale_if_error` (computed once, at start).
    storable: bool,
    /// The response being kept, while its body passes (`begin_capture`).
    capture: Option<Box<Capture>>,
    /// The fault injected into this request, if one hit it (picked at start).
    fault: Option<Box<Fault>>,
    /// The recorded shape waiting for this request's body (`baseline.record.body_limit`).
    shape_body: Option<Box<shape::PendingBody>>,
    _active: ActiveGuard,
}

/// The fault for a request of `flow`: the configuration's rule, else the API's. One
/// branch and one load while neither is set: the clock is read only when one is.
fn pick_fault(
    flow: &FlowRuntime,
    headers: &http::HeaderMap,
    now_ms: impl FnOnce() -> u64,
) -> Option<Box<Fault>> {
    let api = &flow.state.resilience.faults;
    if flow.fault.is_none() && !api.is_armed() {
        return None;
    }
    let now_ms = now_ms();
    let configured = flow.fault.as_ref().and_then(|r| r.roll(now_ms, headers));
    configured
        .or_else(|| api.pick(now_ms, headers))
        .map(Box::new)
}

/// A response being kept for `stale_if_error` while it passes.
struct Capture {
    headers: Vec<(http::HeaderName, HeaderValue)>,
    body: Vec<u8>,
    /// The body's announced length: only a whole body is kept.
    length: usize,
}

/// Which in-flight counts a request was admitted into (only those that are capped).
#[derive(Debug, Default, Clone, Copy)]
struct Slots {
    flow: bool,
    all: bool,
}

impl RequestCtx {
    /// Match the request to a flow and route and start its clocks and its trace
    /// (`telemetry`: the proxy's handle, `None` for W3C propagation only).
    pub fn start(
        shared: &Arc<Shared>,
        telemetry: Option<&Arc<Telemetry>>,
        runtime: Arc<Runtime>,
        parts: &http::request::Parts,
        client: SocketAddr,
    ) -> Self {
        let started = Instant::now();
        let method_idx = method_index(&parts.method);
        let path = parts.uri.path();
        let (flow, route_metrics) = match runtime.router.find(&parts.method, path) {
            Some(m) => (Some(m.flow), runtime.routes[m.route].clone()),
            None => {
                let entry = shared.templates.observe(path);
                let name = &runtime.unmatched.state.name;
                (None, shared.registry.route(name, &entry.route))
            }
        };
        let flow_rt = flow.map_or(&runtime.unmatched, |i| &runtime.flows[i]);
        // Unmatched traffic has no flow a workload could name, so only flows record.
        let shape_body = flow
            .and_then(|_| flow_rt.state.shapes.get())
            .and_then(|shapes| shape::record(shapes, parts, &runtime.redactor));
        let active = flow_rt.state.active.start(method_idx);
        let (trace, mut span) = crate::telemetry::begin(telemetry.map(|t| &**t), parts);
        let storable = super::fallback::request_storable(flow_rt, parts);
        let fault = pick_fault(flow_rt, &parts.headers, || shared.clock.now_ms());
        if fault.is_some() {
            span.fault_injected();
        }
        RequestCtx {
            shared: shared.clone(),
            telemetry: telemetry.cloned(),
            flow,
            route_metrics,
            method: parts.method.clone(),
            method_idx,
            uri: parts.uri.clone(),
            client,
            request_id: super::headers::request_id(&parts.headers),
            trace,
            span,
            started,
            started_wall: SystemTime::now(),
            upstream: None,
            status: None,
            bytes_in: None,
            bytes_out: 0,
            finished: false,
            slots: Slots::default(),
            identity: None,
            decision: None,
            circuit: None,
            storable,
            capture: None,
            fault,
            shape_body,
            _active: active,
            runtime,
        }
    }

    /// The request's whole body, for its recorded shape if one waits for it (one branch
    /// otherwise).
    pub fn body_passed(&mut self, body: &[u8]) {
        if let Some(pending) = self.shape_body.take() {
            pending.keep(body, &self.runtime.redactor);
        }
    }

    /// A copy of the streamed body for the recorded shape waiting for it, if one does.
    pub fn body_tee(&mut self) -> Option<Box<super::request_body::Tee>> {
        let pending = self.shape_body.take()?;
        let redactor = self.runtime.redactor.clone();
        let limit = pending.limit();
        let done = Box::new(move |body: &[u8]| pending.keep(body, &redactor));
        Some(Box::new(super::request_body::Tee::new(limit, done)))
    }

    /// Load shedding (phase 2): take a place among the requests in flight of this flow
    /// (`flows[].max_concurrent_requests`, or its adaptive limit) and of all flows (`limits.max_concurrent_requests`)
    /// when they are capped; a full one refuses the request with 503 `overloaded` before
    /// anything goes upstream. Uncapped, nothing is counted: no shared write per request.
    pub fn admit_load(&mut self) -> Result<(), Error> {
        let all_cap = self.runtime.config.limits.max_concurrent_requests;
        if all_cap > 0 {
            if !take(&self.shared.in_flight, all_cap) {
                return Err(shed("too many requests in flight"));
            }
            self.slots.all = true;
        }
        if let Some(cap) = self.flow_cap() {
            if !take(&self.flow().state.in_flight, cap) {
                return Err(shed("too many requests of this flow in flight"));
            }
            self.slots.flow = true;
        }
        self.admit_circuit()
    }

    /// The flow's circuit breaker (phase 2, after the caps): an open circuit refuses the
    /// request with 503 `circuit_open` and `Retry-After` until its probe is due. Flows
    /// without a breaker pay one branch.
    fn admit_circuit(&mut self) -> Result<(), Error> {
        let Some(policy) = self.flow().breaker else {
            return Ok(());
        };
        let now = self.now_ms();
        match self.flow().state.resilience.breaker.admit(now, &policy) {
            Admission::Pass => self.circuit = Some(false),
            Admission::Probe => self.circuit = Some(true),
            Admission::Refuse(wait) => {
                let open = Error::new(
                    ErrorType::CircuitOpen,
                    "the flow's circuit is open: the app failed recently",
                );
                return Err(open.after(Some(wait)));
            }
        }
        Ok(())
    }

    /// Whether the flow has an `access` rule, so [`RequestCtx::authorize`] has work to do.
    pub fn has_access_rule(&self) -> bool {
        self.flow().access.is_some()
    }

    /// Access control (phase 2, after load shedding): the flow's `access` rule against the
    /// caller's credential. A denial is answered by Redline, so nothing goes upstream. A
    /// flow without a rule returns at the first branch; a `public` rule reads no credential.
    pub async fn authorize(&mut self, headers: &http::HeaderMap) -> Result<(), Error> {
        let Some(rule) = self.flow().access.clone() else {
            return Ok(());
        };
        let public = matches!(rule.rule_for(self.method.as_str()), Some((_, Rule::Public)));
        let who = if public {
            Credential::Missing
        } else {
            let access = self.runtime.access.clone();
            let now = unix_ms(SystemTime::now()) / 1000;
            access.identify(headers, now).await
        };
        let decision = decide(&rule, self.method.as_str(), &who);
        match &who {
            Credential::Valid(id) => self.identity = Some(id.clone()),
            Credential::Invalid(why) => tracing::debug!(reason = %why, "Credential refused."),
            Credential::Missing => {}
        }
        let verdict = decision.verdict;
        self.decision = Some(Box::new(decision));
        let denied = usize::from(verdict != Verdict::Allow);
        self.flow().state.access_counts[denied].fetch_add(1, Relaxed);
        match verdict {
            Verdict::Allow => Ok(()),
            denied => Err(super::phases::denied(denied)),
        }
    }

    /// Tell the flow's breaker how a request it let through ended.
    fn report_circuit(&mut self, error: ErrorType) {
        let (Some(probe), Some(policy)) = (self.circuit.take(), self.flow().breaker) else {
            return;
        };
        let verdict = match error {
            ErrorType::None => Outcome::Success,
            ErrorType::Timeout
            | ErrorType::UpstreamUnavailable
            | ErrorType::UpstreamError
            | ErrorType::Status => Outcome::Failure,
            _ => Outcome::Unknown,
        };
        let now = self.now_ms();
        let breaker = &self.flow().state.resilience.breaker;
        breaker.record(now, verdict, probe, &policy);
    }

    fn release_slots(&mut self) {
        let slots = std::mem::take(&mut self.slots);
        if slots.all {
            self.shared.in_flight.fetch_sub(1, Relaxed);
        }
        if slots.flow {
            self.flow().state.in_flight.fetch_sub(1, Relaxed);
        }
    }

    /// Trace propagation and span export for this request (`None`: W3C propagation only).
    pub fn telemetry(&self) -> Option<&Telemetry> {
        self.telemetry.as_deref()
    }

    /// The flow this request belongs to (the `unmatched` pseudo-flow when none).
    pub fn flow(&self) -> &FlowRuntime {
        self.flow
            .map_or(&self.runtime.unmatched, |i| &self.runtime.flows[i])
    }

    /// The shared clock's now (milliseconds), as the flow's windows and budgets count time.
    pub fn now_ms(&self) -> u64 {
        self.shared.clock.now_ms()
    }

    /// When the request arrived.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The runtime snapshot this request started under.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Flow name for error bodies and logs.
    pub fn flow_name(&self) -> &str {
        &self.flow().state.name
    }

    /// Progress record the request body wrapper updates.
    pub fn body_progress(&mut self) -> Arc<super::request_body::BodyProgress> {
        self.bytes_in.get_or_insert_with(Default::default).clone()
    }

    /// How the client broke its request body, if it did.
    pub fn client_fault(&self) -> Option<super::request_body::ClientFault> {
        self.bytes_in.as_ref().and_then(|p| p.fault())
    }

    /// The whole request body (if any) went upstream: the connection is clean for reuse.
    pub fn request_body_sent(&self) -> bool {
        self.bytes_in.as_ref().is_none_or(|p| p.done())
    }

    /// The upstream's response headers arrived with this status.
    pub fn upstream_responded(&mut self, status: u16) {
        self.upstream = Some(self.started.elapsed());
        self.status = Some(status);
    }

    /// Redline answers by itself with this status.
    pub fn local_response(&mut self, status: u16) {
        self.status = Some(status);
    }

    /// Response body bytes passed to the client.
    pub fn add_bytes_out(&mut self, n: usize) {
        self.bytes_out += n as u64;
    }

    /// Response body bytes passed to the client, copied when the response is being kept.
    pub fn body_out(&mut self, bytes: &[u8]) {
        self.bytes_out += bytes.len() as u64;
        if let Some(c) = self.capture.as_mut() {
            c.body.extend_from_slice(bytes);
        }
    }

    /// The fault injected into this request, if any.
    pub fn fault(&self) -> Option<Fault> {
        self.fault.as_deref().copied()
    }

    /// The request's method.
    pub fn method(&self) -> &http::Method {
        &self.method
    }

    /// The request's target, path and query: what a stale response is kept under.
    pub fn target(&self) -> &str {
        self.uri.path_and_query().map_or("/", |p| p.as_str())
    }

    /// Start keeping the response (status, headers, body of `length` bytes) for
    /// `stale_if_error`, when the request and the response allow it (see `fallback`).
    pub fn begin_capture<'h>(
        &mut self,
        status: u16,
        headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
        length: Option<u64>,
    ) {
        if !self.storable || status != 200 {
            return;
        }
        let Some(p) = self.flow().fallback.as_ref().and_then(|f| f.stale) else {
            return;
        };
        if length.is_none_or(|n| n > p.max_body as u64) {
            return;
        }
        let mut kept = Vec::new();
        for (n, v) in headers {
            if !super::fallback::storable([(n, v)]) {
                return;
            }
            if super::fallback::kept_header(n) {
                if let (Ok(n), Ok(v)) =
                    (http::HeaderName::from_bytes(n), HeaderValue::from_bytes(v))
                {
                    kept.push((n, v));
                }
            }
        }
        let length = length.unwrap_or(0) as usize;
        self.capture = Some(Box::new(Capture {
            headers: kept,
            body: Vec::with_capacity(length),
            length,
        }));
    }

    /// Keep the captured response if it ended whole.
    fn keep_capture(&mut self, error: ErrorType) {
        let Some(c) = self.capture.take() else {
            return;
        };
        let Some(p) = self.flow().fallback.as_ref().and_then(|f| f.stale) else {
            return;
        };
        if error != ErrorType::None || c.body.len() != c.length {
            return;
        }
        let entry = crate::resilience::StaleEntry {
            status: 200,
            headers: c.headers,
            body: bytes::Bytes::from(c.body),
            stored_ms: self.now_ms(),
        };
        let store = &self.flow().state.resilience.stale;
        store.put(self.target(), entry, p.max_size, p.max_age_ms);
    }

    /// End the request: record metrics, window sample and access log line. Idempotent.
    pub fn finish(&mut self, error: Option<ErrorType>) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.sample_concurrency(error);
        self.release_slots();
        let duration = self.started.elapsed();
        let status = self.status.unwrap_or(CLIENT_CLOSED_STATUS);
        let error = error.unwrap_or(if status >= 500 {
            ErrorType::Status
        } else {
            ErrorType::None
        });
        self.report_circuit(error);
        self.keep_capture(error);
        // Spans first: whether the trace was kept decides the histogram's exemplar.
        let kept = self.record_trace(error, duration);
        let seconds = duration.as_secs_f64();
        let exemplar = kept.then(|| Exemplar {
            trace_id: self.trace.trace_id,
            span_id: self.trace.span_id,
            seconds,
            unix_ms: unix_ms(self.started_wall + duration),
        });
        self.route_metrics
            .record(self.method_idx, status, error, seconds, exemplar);
        let sample = Sample {
            latency: duration,
            error: error.is_error(),
            timeout: error == ErrorType::Timeout,
            denied: matches!(error, ErrorType::Unauthenticated | ErrorType::Forbidden),
        };
        let now_ms = self.shared.clock.now_ms();
        let state = &self.flow().state;
        state.window.record(now_ms, sample);
        // Only SLO flows have a counter: one branch for the rest.
        if let Some(slo) = state.slo.get() {
            slo.record(now_ms, &sample);
        }
        if error == ErrorType::UpstreamUnavailable {
            // Counted only: the warning is `proxy::reach`'s job, off the request path.
            let count = &self.shared.upstream_unavailable;
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if self.shared.access_log.enabled() {
            self.log(status, duration, error);
        }
        if let Some(telemetry) = self.telemetry.as_deref().filter(|t| t.exports_logs()) {
            self.log_otlp(telemetry, status, duration, error, kept);
        }
        if let Some(trail) = &self.shared.audit_trail {
            let denied = self.decision.as_ref().map(|d| d.verdict != Verdict::Allow);
            if denied == Some(true) || self.flow().audit {
                trail.record(self.audit_entry(status));
            }
        }
    }

    /// Remember the trace of a failed or slow request for alerts, and hand the spans to the
    /// exporter's queue (non-blocking) if they are kept; returns whether they were.
    fn record_trace(&mut self, error: ErrorType, duration: Duration) -> bool {
        let flow = self
            .flow
            .map_or(&self.runtime.unmatched, |i| &self.runtime.flows[i]);
        if error.is_error() || flow.slow_threshold.is_some_and(|t| duration > t) {
            let now_ms = self.shared.clock.now_ms();
            flow.state.exemplars.push(now_ms, self.trace.trace_id_hex());
        }
        let Some(telemetry) = self.telemetry.as_deref() else {
            return false;
        };
        let outcome = crate::telemetry::Outcome {
            trace: &self.trace,
            method: &self.method,
            uri: &self.uri,
            client: self.client,
            flow: &flow.state.name,
            route: &self.route_metrics.route,
            status: self.status,
            upstream_responded: self.upstream.is_some(),
            error,
            started: self.started,
            started_wall: self.started_wall,
            duration,
            request_id: &self.request_id,
            runtime: &self.runtime,
        };
        telemetry.end(&mut self.span, &outcome, flow.slow_threshold)
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Count one more in `in_flight` unless it is at `cap`.
fn take(in_flight: &AtomicUsize, cap: usize) -> bool {
    if in_flight.fetch_add(1, Relaxed) < cap {
        return true;
    }
    in_flight.fetch_sub(1, Relaxed);
    false
}

/// A request shed by Redline's own limits; nothing was sent upstream.
fn shed(what: &'static str) -> Error {
    Error::new(ErrorType::Overloaded, what).retry(Retry::Always)
}

impl Drop for RequestCtx {
    /// A context dropped unfinished means hyper dropped the request: the client went away.
    fn drop(&mut self) {
        self.finish(Some(ErrorType::ClientClosed));
    }
}
