//! `redline baseline run`: check the target, step the rate up, stop at the first broken
//! threshold, the abort limit or `--max-rate`, and print progress on stderr.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::BaselineError;
use super::connection::Target;
use super::generator::{Generator, StepPlan};
use super::report::{Report, SCHEMA, StepReport, step_report, summarize};
use super::workload::Workload;

/// The rates of `--ramp`: start here and grow by [`RAMP_FACTOR`] each step.
pub const RAMP_START: f64 = 10.0;
/// Growth per `--ramp` step: 25% keeps the knee within one step of ±20%.
pub const RAMP_FACTOR: f64 = 1.25;

/// What `run` was asked to do, already validated by the command line.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// Target base URL, `http://host:port`.
    pub target: String,
    /// Explicit rates; `None` means ramp.
    pub rates: Option<Vec<f64>>,
    /// Length of each step.
    pub step: Duration,
    /// Never offer more than this (total req/s).
    pub max_rate: f64,
    /// Stop at once when this fraction of requests fail.
    pub abort_error_rate: f64,
    /// Bound on concurrent requests (and so connections).
    pub max_in_flight: usize,
    /// Let the target be outside loopback.
    pub allow_remote: bool,
    /// Extra steps bisecting between the last rate that held and the first that broke.
    pub refine: usize,
    /// Unmeasured load at the first rate before the first step.
    pub warmup: Duration,
    /// PEM file of the CA(s) trusted for an `https` target instead of the Mozilla roots.
    pub ca: Option<PathBuf>,
}

impl RunPlan {
    /// The rates to step through, in order, all at most `max_rate`.
    pub fn schedule(&self) -> Vec<f64> {
        match &self.rates {
            Some(rates) => rates.clone(),
            None => {
                let mut out = Vec::new();
                let mut rate = RAMP_START.min(self.max_rate);
                while rate <= self.max_rate {
                    out.push((rate * 100.0).round() / 100.0);
                    rate = (rate * RAMP_FACTOR).ceil();
                }
                out
            }
        }
    }
}

/// Refuse a target whose host is not loopback, unless allowed: this command must never
/// become a way to flood someone else's server. Names are resolved and every address must
/// be loopback, so `localhost` passes and a public name does not.
pub async fn check_target(target: &str, allow_remote: bool) -> Result<(), BaselineError> {
    let uri: http::Uri = target
        .parse()
        .map_err(|e| BaselineError::Target(format!("invalid --target {target:?}: {e}")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(BaselineError::Target(format!(
            "--target {target:?}: expected http(s)://HOST[:PORT]"
        )));
    }
    if allow_remote {
        return Ok(());
    }
    let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    let loopback = match host.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => resolves_to_loopback(host, port).await,
    };
    if loopback {
        return Ok(());
    }
    Err(BaselineError::Target(format!(
        "--target {target}: {host} is not a loopback address; load tests are refused outside \
         this machine unless you pass --allow-remote (and own the target)"
    )))
}

async fn resolves_to_loopback(host: &str, port: u16) -> bool {
    match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => {
            let addrs: Vec<_> = addrs.collect();
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
        }
        Err(_) => false,
    }
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Held,
    Broke,
    Aborted,
}

/// The state of one run: what it sends, and the steps so far.
struct Stepper<'a, P: FnMut(&str)> {
    plan: &'a RunPlan,
    workload: Arc<Workload>,
    generator: Generator,
    steps: Vec<StepReport>,
    progress: P,
}

impl<P: FnMut(&str)> Stepper<'_, P> {
    /// Run one step at `rate`; `left` is how many steps may still follow.
    async fn step(&mut self, rate: f64, left: usize) -> Verdict {
        let index = self.steps.len();
        let step_plan = StepPlan {
            rate,
            duration: self.plan.step,
            abort_error_rate: self.plan.abort_error_rate,
            seed: index as u64 + 1,
        };
        let outcome = self.generator.step(step_plan).await;
        let report = step_report(&self.workload, rate, &outcome);
        let time_left = self.plan.step * left as u32;
        (self.progress)(&progress_line(index, index + 1 + left, &report, time_left));
        let broken = report.flows.iter().any(|f| !f.breaches.is_empty());
        self.steps.push(report);
        match (outcome.aborted, broken) {
            (true, _) => Verdict::Aborted,
            (false, true) => Verdict::Broke,
            (false, false) => Verdict::Held,
        }
    }

    /// Open every connection, then send at the first rate for `warmup`, unmeasured:
    /// connections opened and the target's caches filled at start would otherwise count
    /// against the first step.
    async fn warm_up(&mut self, rate: f64) {
        self.generator.open_all(self.workload.max_timeout()).await;
        if self.plan.warmup.is_zero() {
            return;
        }
        (self.progress)(&format!(
            "warm-up: {} at {rate} req/s (not measured)",
            humantime::format_duration(self.plan.warmup)
        ));
        let plan = StepPlan {
            rate,
            duration: self.plan.warmup,
            abort_error_rate: self.plan.abort_error_rate,
            seed: 0,
        };
        self.generator.step(plan).await;
    }

    /// Step up through `rates` until a step breaks or aborts; why it stopped.
    async fn climb(&mut self, rates: &[f64]) -> &'static str {
        for (index, &rate) in rates.iter().enumerate() {
            if rate > self.plan.max_rate {
                return "max_rate";
            }
            let left = rates.len() - index - 1 + self.plan.refine;
            match self.step(rate, left).await {
                Verdict::Held => {}
                Verdict::Broke => return "threshold",
                Verdict::Aborted => return "abort",
            }
        }
        "rates_done"
    }

    /// Bisect between the last rate that held and the one that broke, `refine` times, so
    /// the knee is known more finely than the step sizes.
    async fn refine(&mut self) {
        let Some(broke) = self.steps.last().map(|s| s.offered_rps) else {
            return;
        };
        let Some(mut held) = self.steps.iter().rev().nth(1).map(|s| s.offered_rps) else {
            return;
        };
        let mut broke = broke;
        for round in 0..self.plan.refine {
            let mid = ((held + broke) / 2.0).round();
            if mid <= held || mid >= broke {
                return;
            }
            match self.step(mid, self.plan.refine - round - 1).await {
                Verdict::Held => held = mid,
                Verdict::Broke => broke = mid,
                Verdict::Aborted => return,
            }
        }
    }
}

/// Step through the rates; `progress` receives one line per step (and one at the start).
pub async fn run(
    plan: &RunPlan,
    workload: Workload,
    mut progress: impl FnMut(&str),
) -> Result<Report, BaselineError> {
    check_target(&plan.target, plan.allow_remote).await?;
    let target = Target::new(&plan.target, plan.ca.as_deref())?;
    let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let workload = Arc::new(workload);
    let rates = plan.schedule();
    progress(&format!(
        "baseline: {} flow(s) against {}, {} step(s) of {} up to {} req/s",
        workload.flows.len(),
        plan.target,
        rates.len(),
        humantime::format_duration(plan.step),
        rates.last().copied().unwrap_or(0.0)
    ));
    let mut stepper = Stepper {
        plan,
        generator: Generator::new(target, workload.clone(), plan.max_in_flight),
        workload: workload.clone(),
        steps: Vec::new(),
        progress,
    };
    if let Some(&first) = rates.first() {
        stepper.warm_up(first).await;
    }
    let mut stopped = stepper.climb(&rates).await;
    if stopped == "threshold" {
        stepper.refine().await;
    }
    if stopped == "rates_done" && rates.iter().any(|&r| r > plan.max_rate) {
        stopped = "max_rate";
    }
    let mut steps = stepper.steps;
    // Refinement steps ran last but belong between the rates they split.
    steps.sort_by(|a, b| a.offered_rps.total_cmp(&b.offered_rps));
    let (flows, first_break) = summarize(&workload, &steps);
    Ok(Report {
        schema: SCHEMA.into(),
        started_at,
        target: plan.target.clone(),
        workload: workload.source.clone(),
        step_s: plan.step.as_secs_f64(),
        stopped: stopped.into(),
        knee_rps: knee(&steps),
        first_break,
        flows,
        steps,
    })
}

/// The highest rate before the first step where any flow broke a threshold or the run aborted.
fn knee(steps: &[StepReport]) -> Option<f64> {
    steps
        .iter()
        .take_while(|s| !s.aborted && s.flows.iter().all(|f| f.breaches.is_empty()))
        .last()
        .map(|s| s.offered_rps)
}

fn progress_line(index: usize, count: usize, step: &StepReport, left: Duration) -> String {
    let worst_p95 = step
        .flows
        .iter()
        .filter_map(|f| f.p95_ms)
        .fold(0.0, f64::max);
    let requests: u64 = step.flows.iter().map(|f| f.requests).sum();
    let errors: f64 = step
        .flows
        .iter()
        .map(|f| f.error_rate * f.requests as f64)
        .sum();
    let error_rate = if requests == 0 {
        0.0
    } else {
        errors / requests as f64
    };
    let breaches: Vec<String> = step
        .flows
        .iter()
        .flat_map(|f| {
            f.breaches
                .iter()
                .map(move |b| format!("{}: {} (measured {})", f.flow, b.rule, b.measured))
        })
        .collect();
    let verdict = match (step.aborted, breaches.is_empty()) {
        (true, _) => "ABORTED: error rate over the abort limit".to_string(),
        (false, true) => "held".to_string(),
        (false, false) => format!("BROKE {}", breaches.join("; ")),
    };
    format!(
        "step {} of at most {count}: {} req/s offered, {} achieved, worst p95 {worst_p95}ms, \
         errors {:.2}%, at most {} left: {verdict}",
        index + 1,
        step.offered_rps,
        step.achieved_rps,
        error_rate * 100.0,
        humantime::format_duration(left),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(rates: Option<Vec<f64>>, max_rate: f64) -> RunPlan {
        RunPlan {
            target: "http://127.0.0.1:1".into(),
            rates,
            step: Duration::from_secs(1),
            max_rate,
            abort_error_rate: 0.5,
            max_in_flight: 8,
            allow_remote: false,
            refine: 0,
            warmup: Duration::ZERO,
            ca: None,
        }
    }

    #[test]
    fn ramp_grows_by_a_quarter_up_to_the_max() {
        let rates = plan(None, 40.0).schedule();
        assert_eq!(rates, [10.0, 13.0, 17.0, 22.0, 28.0, 35.0]);
        assert_eq!(plan(Some(vec![5.0, 50.0]), 10.0).schedule(), [5.0, 50.0]);
    }

    #[tokio::test]
    async fn remote_targets_need_the_flag() {
        assert!(check_target("http://127.0.0.1:8080", false).await.is_ok());
        assert!(check_target("http://[::1]:8080", false).await.is_ok());
        assert!(check_target("http://localhost:8080", false).await.is_ok());
        let err = check_target("http://10.1.2.3", false).await.unwrap_err();
        assert!(err.to_string().contains("--allow-remote"), "{err}");
        assert!(check_target("http://10.1.2.3", true).await.is_ok());
        assert!(check_target("https://127.0.0.1", false).await.is_ok());
        assert!(check_target("https://10.1.2.3", false).await.is_err());
        assert!(check_target("ftp://127.0.0.1", false).await.is_err());
    }
}
