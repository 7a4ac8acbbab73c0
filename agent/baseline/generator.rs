//! The open-model load generator: requests leave on a fixed schedule, whatever the target does.
//!
//! Request `i` of a step is *intended* to start at `start + i / rate`, and its latency is
//! measured from that instant, not from when it actually left. A closed-loop generator waits
//! for responses before sending more, so a stalled server also stalls the load and the stall
//! vanishes from the percentiles (coordinated omission); here the requests due during a stall
//! are still due, and each one's latency includes the time it should already have been
//! served (as wrk2 and oha's latency correction do).
//!
//! In-flight requests are bounded by a semaphore (`max_in_flight`), which also bounds the
//! connections the pool opens: a request waiting for a permit keeps its intended start, so the
//! bound shows up as latency rather than silently lowering the rate.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::workload::{PreparedRequest, Workload};

/// Highest latency a histogram holds, in microseconds (one hour); longer values saturate.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// After this many completed requests the abort limit is judged (fewer are noise).
const ABORT_MIN_REQUESTS: u64 = 20;

/// What one step does.
#[derive(Debug, Clone, Copy)]
pub struct StepPlan {
    /// Total requests per second, across flows.
    pub rate: f64,
    /// How long requests are sent.
    pub duration: Duration,
    /// Stop sending when this fraction of completed requests failed.
    pub abort_error_rate: f64,
    /// Seed of the pick among a flow's requests, so a step's requests are reproducible.
    pub seed: u64,
}

/// One flow's measurements in a step.
#[derive(Debug, Clone)]
pub struct FlowTally {
    /// Latency from intended start to the end of the response body, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Requests sent.
    pub requests: u64,
    /// Responses received (any status).
    pub responses: u64,
    /// 5xx responses, transport failures and timeouts.
    pub errors: u64,
    /// Requests that hit the flow's timeout.
    pub timeouts: u64,
    /// Requests whose outcome is recorded.
    pub completed: u64,
}

impl Default for FlowTally {
    fn default() -> FlowTally {
        FlowTally {
            latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("static histogram bounds are valid"),
            requests: 0,
            responses: 0,
            errors: 0,
            timeouts: 0,
            completed: 0,
        }
    }
}

/// Everything a step measured.
#[derive(Debug, Clone)]
pub struct StepOutcome {
    /// Per flow, in workload order.
    pub flows: Vec<FlowTally>,
    /// From the first intended start to the last completion (at least the step duration).
    pub elapsed: Duration,
    /// The longest the generator itself was late sending a request: when this is large,
    /// the machine running the generator, not the target, limited the rate.
    pub max_send_lag: Duration,
    /// True when the abort limit stopped the step.
    pub aborted: bool,
}

/// How one request ended.
enum Outcome {
    Status(u16),
    Failed,
    TimedOut,
}

/// Counters the scheduler reads while requests complete.
struct Live {
    flows: Vec<Mutex<FlowTally>>,
    done: AtomicU64,
    failed: AtomicU64,
    abort: AtomicBool,
    last_done: Mutex<Instant>,
}

/// Sends a workload's requests to one target.
#[derive(Clone)]
pub struct Generator {
    client: Client<HttpConnector, Full<Bytes>>,
    base: Arc<str>,
    workload: Arc<Workload>,
    permits: Arc<Semaphore>,
}

impl Generator {
    /// A generator for `base` (`http://host:port`), at most `max_in_flight` requests at once.
    pub fn new(base: &str, workload: Arc<Workload>, max_in_flight: usize) -> Generator {
        let mut connector = HttpConnector::new();
        // Small requests must not wait for Nagle's algorithm: that would be latency we add.
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(max_in_flight)
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Generator {
            client,
            base: base.trim_end_matches('/').into(),
            workload,
            permits: Arc::new(Semaphore::new(max_in_flight.max(1))),
        }
    }

    /// Run one step at a constant arrival rate and wait for its requests to finish.
    pub async fn step(&self, plan: StepPlan) -> StepOutcome {
        let live = Arc::new(Live {
            flows: self
                .workload
                .flows
                .iter()
                .map(|_| Mutex::new(FlowTally::default()))
                .collect(),
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            abort: AtomicBool::new(false),
            last_done: Mutex::new(Instant::now()),
        });
        let start = Instant::now();
        let (mut tasks, max_send_lag) = self.schedule(plan, start, &live).await;
        // Every request carries its own timeout, so draining ends; the margin is for tasks
        // that are due but not yet polled on a busy machine.
        let drain = self.workload.max_timeout() + Duration::from_secs(1);
        let _ =
            tokio::time::timeout(drain, async { while tasks.join_next().await.is_some() {} }).await;
        tasks.abort_all();
        count_unfinished(&live, start);
        // Requests that hang until their timeout complete after sending ended, where the
        // scheduler's check cannot see them: judge the abort limit once more on the whole step.
        if should_abort(&live, plan.abort_error_rate) {
            live.abort.store(true, Ordering::Relaxed);
        }
        let last = *live.last_done.lock().expect("last_done lock");
        let flows = live
            .flows
            .iter()
            .map(|f| f.lock().expect("tally lock").clone())
            .collect();
        StepOutcome {
            flows,
            elapsed: last.saturating_duration_since(start).max(plan.duration),
            max_send_lag,
            aborted: live.abort.load(Ordering::Relaxed),
        }
    }

    /// Spawn one request per intended start until the step ends or the abort limit trips.
    async fn schedule(
        &self,
        plan: StepPlan,
        start: Instant,
        live: &Arc<Live>,
    ) -> (JoinSet<()>, Duration) {
        let mut rng = fastrand::Rng::with_seed(plan.seed);
        let mut mix = Mix::new(&self.workload);
        let mut tasks = JoinSet::new();
        let mut max_lag = Duration::ZERO;
        let total = (plan.rate * plan.duration.as_secs_f64()).round() as u64;
        for i in 0..total {
            let intended = start + Duration::from_secs_f64(i as f64 / plan.rate);
            tokio::time::sleep_until(intended).await;
            max_lag = max_lag.max(Instant::now().saturating_duration_since(intended));
            if should_abort(live, plan.abort_error_rate) {
                live.abort.store(true, Ordering::Relaxed);
                break;
            }
            let flow = mix.next();
            let request = self.workload.request(flow, rng.f64()).clone();
            live.flows[flow].lock().expect("tally lock").requests += 1;
            let this = self.clone();
            let live = live.clone();
            tasks.spawn(async move {
                let outcome = this.send(flow, &request).await;
                record(&live, flow, intended, outcome);
            });
            // Reap finished tasks as we go so the set does not grow with the step.
            while tasks.try_join_next().is_some() {}
        }
        (tasks, max_lag)
    }

    /// One request: wait for a permit, send, read the whole body, all within the flow's
    /// timeout (a client gives up after its timeout, however the time was spent).
    async fn send(&self, flow: usize, request: &PreparedRequest) -> Outcome {
        let timeout = self.workload.flows[flow].timeout;
        tokio::time::timeout(timeout, self.exchange(request))
            .await
            .unwrap_or(Outcome::TimedOut)
    }

    async fn exchange(&self, request: &PreparedRequest) -> Outcome {
        let Ok(_permit) = self.permits.acquire().await else {
            return Outcome::Failed;
        };
        let uri = format!("{}{}", self.base, request.path);
        let mut builder = http::Request::builder()
            .method(request.method.clone())
            .uri(uri);
        if let Some(headers) = builder.headers_mut() {
            headers.extend(request.headers.clone());
        }
        let Ok(req) = builder.body(Full::new(request.body.clone())) else {
            return Outcome::Failed;
        };
        let Ok(response) = self.client.request(req).await else {
            return Outcome::Failed;
        };
        let status = response.status().as_u16();
        match response.into_body().collect().await {
            Ok(_) => Outcome::Status(status),
            Err(_) => Outcome::Failed,
        }
    }
}

/// Interleaves flows so each gets exactly its share of every step (smooth weighted
/// round-robin, as nginx balances upstreams): a random pick would make a flow's offered rate
/// in a short step noisy, and the report states it as exact.
struct Mix {
    shares: Vec<f64>,
    credit: Vec<f64>,
}

impl Mix {
    fn new(workload: &Workload) -> Mix {
        let shares: Vec<f64> = workload.flows.iter().map(|f| f.share).collect();
        let credit = vec![0.0; shares.len()];
        Mix { shares, credit }
    }

    /// The flow of the next request: the one furthest behind its share.
    fn next(&mut self) -> usize {
        for (credit, share) in self.credit.iter_mut().zip(&self.shares) {
            *credit += share;
        }
        let best = (0..self.credit.len())
            .max_by(|&a, &b| self.credit[a].total_cmp(&self.credit[b]).then(b.cmp(&a)))
            .unwrap_or(0);
        self.credit[best] -= 1.0;
        best
    }
}

/// Requests the drain gave up on (their tasks never got to record) count as timeouts, with
/// the whole step as their latency, so they cannot vanish from the error and timeout rates.
fn count_unfinished(live: &Live, start: Instant) {
    let waited = u64::try_from(Instant::now().saturating_duration_since(start).as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    for flow in &live.flows {
        let mut tally = flow.lock().expect("tally lock");
        let unfinished = tally.requests.saturating_sub(tally.completed);
        if unfinished > 0 {
            tally.errors += unfinished;
            tally.timeouts += unfinished;
            tally.completed += unfinished;
            let _ = tally
                .latency_us
                .record_n(waited.min(MAX_LATENCY_US), unfinished);
            live.failed.fetch_add(unfinished, Ordering::Relaxed);
            live.done.fetch_add(unfinished, Ordering::Relaxed);
        }
    }
}

fn should_abort(live: &Live, limit: f64) -> bool {
    let done = live.done.load(Ordering::Relaxed);
    let failed = live.failed.load(Ordering::Relaxed);
    done >= ABORT_MIN_REQUESTS && failed as f64 > limit * done as f64
}

fn record(live: &Live, flow: usize, intended: Instant, outcome: Outcome) {
    let now = Instant::now();
    let micros = now.saturating_duration_since(intended).as_micros();
    let micros = u64::try_from(micros).unwrap_or(u64::MAX).max(1);
    let failed = !matches!(outcome, Outcome::Status(s) if s < 500);
    {
        let mut tally = live.flows[flow].lock().expect("tally lock");
        tally.latency_us.saturating_record(micros);
        tally.completed += 1;
        match outcome {
            Outcome::Status(status) => {
                tally.responses += 1;
                tally.errors += u64::from(status >= 500);
            }
            Outcome::Failed => tally.errors += 1,
            Outcome::TimedOut => {
                tally.errors += 1;
                tally.timeouts += 1;
            }
        }
    }
    live.failed.fetch_add(u64::from(failed), Ordering::Relaxed);
    live.done.fetch_add(1, Ordering::Relaxed);
    let mut last = live.last_done.lock().expect("last_done lock");
    *last = (*last).max(now);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_gives_each_flow_its_exact_share() {
        let mut mix = Mix {
            shares: vec![0.25, 0.75],
            credit: vec![0.0, 0.0],
        };
        let picks: Vec<usize> = (0..8).map(|_| mix.next()).collect();
        assert_eq!(picks.iter().filter(|&&f| f == 0).count(), 2, "{picks:?}");
        assert_eq!(
            picks[..4].iter().filter(|&&f| f == 0).count(),
            1,
            "{picks:?}"
        );
    }
}
