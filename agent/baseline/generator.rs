//! The open-model load generator: requests leave on a fixed schedule, whatever the target does.
//!
//! Request `i` of a step is *intended* to start at `start + i / rate`, and its latency is
//! measured from that instant, not from when it actually left. A closed-loop generator waits
//! for responses before sending more, so a stalled server also stalls the load and the stall
//! vanishes from the percentiles (coordinated omission); here the requests due during a stall
//! are still due, and each one's latency includes the time it should already have been
//! served (as wrk2 and oha's latency correction do).
//!
//! The schedule is kept by a pacing task on a microsecond timer ([`super::timer`]), not on
//! tokio's, whose one-millisecond wheel would make every request up to a millisecond late and
//! that lateness count as the target's latency. Request `i` goes to connection `i % connections`; each connection is owned by one task
//! that carries one request at a time, as wrk2 does, so there is no pool checkout and no task
//! spawn per request. A request whose connection is still busy waits for it and keeps its
//! intended start, so too few connections show up as latency rather than a lower rate.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::connection::{Connection, Outcome, Target};
use super::timer::{Timer, sleep_until};
use super::workload::Workload;

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

/// Counters the scheduler reads while requests complete.
struct Live {
    flows: Vec<Mutex<FlowTally>>,
    done: AtomicU64,
    failed: AtomicU64,
    abort: AtomicBool,
    last_done: Mutex<Instant>,
}

/// One request, handed from the pacing thread to a connection's task.
struct Job {
    flow: usize,
    request: usize,
    intended: Instant,
}

/// Sends a workload's requests to one target.
pub struct Generator {
    target: Arc<Target>,
    workload: Arc<Workload>,
    /// Kept across steps (and the warm-up), so a step does not pay for opening them.
    connections: Vec<Arc<tokio::sync::Mutex<Connection>>>,
}

impl Generator {
    /// A generator for `target` over `connections` connections (opened on first use).
    pub fn new(target: Target, workload: Arc<Workload>, connections: usize) -> Generator {
        Generator {
            target: Arc::new(target),
            workload,
            connections: (0..connections.max(1)).map(|_| Arc::default()).collect(),
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
        let (queues, mut tasks) = self.start_connections(&live);
        let start = Instant::now();
        let pacer = {
            let (workload, live) = (self.workload.clone(), live.clone());
            tokio::spawn(async move { pace(plan, start, &workload, &live, &queues).await })
        };
        let max_send_lag = pacer.await.unwrap_or(Duration::ZERO);
        // Every request carries its own deadline, so draining ends; the margin is for
        // requests that are due but not yet picked up on a busy machine.
        let drain = self.workload.max_timeout() + Duration::from_secs(1);
        let _ =
            tokio::time::timeout(drain, async { while tasks.join_next().await.is_some() {} }).await;
        tasks.abort_all();
        count_unfinished(&live, start);
        // Requests that hang until their timeout complete after sending ended, where the
        // pacer's check cannot see them: judge the abort limit once more on the whole step.
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

    /// Open every connection not open yet, all at once, each within `timeout`: as wrk2 does
    /// before it measures, so no measured request pays for a handshake.
    pub async fn open_all(&self, timeout: Duration) {
        let mut opening = JoinSet::new();
        for connection in &self.connections {
            let (connection, target) = (connection.clone(), self.target.clone());
            opening.spawn(async move {
                let mut connection = connection.lock().await;
                let _ = tokio::time::timeout(timeout, connection.open(&target)).await;
            });
        }
        while opening.join_next().await.is_some() {}
    }

    /// One task per connection, fed by its own queue, until the pacer drops the queues.
    fn start_connections(
        &self,
        live: &Arc<Live>,
    ) -> (Vec<mpsc::UnboundedSender<Job>>, JoinSet<()>) {
        let mut tasks = JoinSet::new();
        let queues = self
            .connections
            .iter()
            .map(|connection| {
                let (tx, rx) = mpsc::unbounded_channel();
                let (connection, target) = (connection.clone(), self.target.clone());
                let (workload, live) = (self.workload.clone(), live.clone());
                tasks.spawn(async move {
                    let mut connection = connection.lock().await;
                    serve(&mut connection, &target, &workload, &live, rx).await;
                });
                tx
            })
            .collect();
        (queues, tasks)
    }
}

/// A connection's task: its requests in order, each within its flow's timeout counted from
/// its intended start (a client gives up after its timeout, however the time was spent).
async fn serve(
    connection: &mut Connection,
    target: &Target,
    workload: &Workload,
    live: &Live,
    mut queue: mpsc::UnboundedReceiver<Job>,
) {
    while let Some(job) = queue.recv().await {
        let flow = &workload.flows[job.flow];
        let deadline = tokio::time::Instant::from_std(job.intended + flow.timeout);
        let outcome = if tokio::time::Instant::now() >= deadline {
            Outcome::TimedOut
        } else {
            let request = workload.request_at(job.flow, job.request);
            connection.exchange(target, request, deadline).await
        };
        record(live, job.flow, job.intended, outcome);
    }
}

/// The pacing task: hand each request to its connection at its intended start, until the
/// step ends or the abort limit trips; the longest it was late.
async fn pace(
    plan: StepPlan,
    start: Instant,
    workload: &Workload,
    live: &Live,
    queues: &[mpsc::UnboundedSender<Job>],
) -> Duration {
    let timer = Timer::new().ok();
    let mut rng = fastrand::Rng::with_seed(plan.seed);
    let mut mix = Mix::new(workload);
    let mut max_lag = Duration::ZERO;
    let total = (plan.rate * plan.duration.as_secs_f64()).round() as u64;
    for i in 0..total {
        let intended = start + Duration::from_secs_f64(i as f64 / plan.rate);
        sleep_until(timer.as_ref(), intended).await;
        max_lag = max_lag.max(Instant::now().saturating_duration_since(intended));
        if should_abort(live, plan.abort_error_rate) {
            live.abort.store(true, Ordering::Relaxed);
            break;
        }
        let flow = mix.next();
        let request = workload.pick(flow, rng.f64());
        live.flows[flow].lock().expect("tally lock").requests += 1;
        let queue = &queues[(i % queues.len() as u64) as usize];
        // Fails only when the connection's task is gone (it panicked): the request is never
        // sent and the drain counts it as a timeout.
        let _ = queue.send(Job {
            flow,
            request,
            intended,
        });
    }
    max_lag
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
