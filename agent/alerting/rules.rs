//! Alert rules compiled from a flow's configuration, and their evaluation over its windows.
//!
//! A rule is judged from exact per-slot counts: threshold rules from the flow's 5 s
//! [`FlowWindow`](crate::stats::FlowWindow), SLO burn-rate rules from its 1 m SLO counter.
//! Nothing here takes a lock or allocates on the request path; it runs on the evaluator task.

use std::time::Duration;

use super::slo::{self, BurnPair};
pub use super::state_machine::{AlertKey, Evaluation};
use super::state_machine::{Timing, Verdict};
use crate::config::{AlertRule, FlowConfig, When, format_duration, format_percent};
use crate::state::FlowState;
use crate::stats::window::SLOT_MS;

/// What a rule tests.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// A `when:` threshold over the flow window.
    Threshold(When),
    /// SLO burn rate: Breach when any pair burns faster than its factor on both windows.
    Burn {
        /// Good-event target, e.g. 0.995.
        objective: f64,
        /// The multi-window pairs, fastest first.
        pairs: &'static [BurnPair],
    },
    /// The flow's circuit breaker is open or half-open (`FlowCircuitOpen`): read from the
    /// breaker's state rather than a window, since the breaker already judged the failures.
    CircuitOpen,
}

/// Name of the alert of a flow whose circuit is open.
pub const CIRCUIT_ALERT: &str = "FlowCircuitOpen";

/// How long a closed circuit must stay closed before its alert resolves: a probe that
/// closes it and a failure that opens it again should not page twice.
const CIRCUIT_KEEP_FIRING: Duration = Duration::from_secs(30);

/// A rule ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleDef {
    /// Identity.
    pub key: AlertKey,
    /// What is tested.
    pub condition: Condition,
    /// Window of a threshold rule; for SLO rules, the short window of the fastest pair.
    pub over: Duration,
    /// Lifecycle durations.
    pub timing: Timing,
    /// Fewer requests in the window make the verdict Unknown (not for `rps <`).
    pub min_requests: u64,
}

/// The two burn-rate alerts of a flow's SLO.
pub fn slo_rules(flow: &str, objective: f64) -> [RuleDef; 2] {
    let make = |severity: &str, pairs: &'static [BurnPair]| {
        let key = AlertKey {
            flow: flow.to_string(),
            alertname: slo::ALERT_NAME.to_string(),
            severity: severity.to_string(),
        };
        let over = pairs.first().map_or(slo::MINUTE, |p| p.short);
        // The pairs are the debounce (Sloth emits no `for`); Ok must hold a minute to resolve.
        let condition = Condition::Burn { objective, pairs };
        rule_with(
            key,
            condition,
            over,
            Duration::ZERO,
            slo::MINUTE,
            slo::MIN_REQUESTS,
        )
    };
    [
        make("page", &slo::PAGE_PAIRS),
        make("warning", &slo::WARNING_PAIRS),
    ]
}

/// Times Unknown may last while firing, in units of `over` (PRODUCT §6).
const NO_DATA_OVERS: u32 = 3;

/// Every rule of a flow: its `alerts:` in order, then its SLO's burn-rate alerts. A key seen
/// twice keeps its first rule (config validation already rejects duplicate rules).
pub fn compile(flow: &FlowConfig) -> Vec<RuleDef> {
    let mut rules: Vec<RuleDef> = flow
        .alerts
        .iter()
        .map(|r| threshold_rule(&flow.name, r))
        .collect();
    if let Some(s) = &flow.slo {
        rules.extend(slo_rules(&flow.name, s.objective));
    }
    if flow.circuit_breaker.is_some() {
        let key = AlertKey {
            flow: flow.name.clone(),
            alertname: CIRCUIT_ALERT.to_string(),
            severity: "warning".to_string(),
        };
        let over = Duration::from_millis(SLOT_MS);
        let keep = CIRCUIT_KEEP_FIRING;
        rules.push(rule_with(
            key,
            Condition::CircuitOpen,
            over,
            Duration::ZERO,
            keep,
            0,
        ));
    }
    let mut seen = std::collections::HashSet::new();
    rules.retain(|r| seen.insert(r.key.clone()));
    rules
}

fn threshold_rule(flow: &str, rule: &AlertRule) -> RuleDef {
    RuleDef {
        key: AlertKey {
            flow: flow.to_string(),
            alertname: rule.name.clone(),
            severity: rule.severity.as_str().to_string(),
        },
        condition: Condition::Threshold(rule.when),
        over: rule.over,
        timing: Timing {
            for_: rule.for_,
            keep_firing_for: rule.keep_firing_for,
            no_data_after: rule.over.saturating_mul(NO_DATA_OVERS),
        },
        min_requests: rule.min_requests,
    }
}

/// A rule for `key` over `over`, with the usual no-data allowance.
pub(super) fn rule_with(
    key: AlertKey,
    condition: Condition,
    over: Duration,
    for_: Duration,
    keep_firing_for: Duration,
    min_requests: u64,
) -> RuleDef {
    RuleDef {
        key,
        condition,
        over,
        timing: Timing {
            for_,
            keep_firing_for,
            no_data_after: over.saturating_mul(NO_DATA_OVERS),
        },
        min_requests,
    }
}

impl RuleDef {
    /// Judge the rule on `flow` at `now_ms`.
    pub fn evaluate(&self, flow: &FlowState, now_ms: u64) -> Evaluation {
        match &self.condition {
            Condition::Threshold(when) => self.evaluate_threshold(when, flow, now_ms),
            Condition::Burn { objective, pairs } => match flow.slo.get() {
                Some(c) => slo::judge(c.counter(), *objective, pairs, self.min_requests, now_ms),
                None => Evaluation {
                    verdict: Verdict::Unknown,
                    value: None,
                    requests: 0,
                    pair: None,
                },
            },
            Condition::CircuitOpen => {
                let state = flow.resilience.breaker.state();
                let open = state != crate::resilience::CircuitState::Closed;
                Evaluation {
                    verdict: if open { Verdict::Breach } else { Verdict::Ok },
                    value: Some(state as u8 as f64),
                    requests: flow.window.summary(now_ms, self.over).requests,
                    pair: None,
                }
            }
        }
    }

    fn evaluate_threshold(&self, when: &When, flow: &FlowState, now_ms: u64) -> Evaluation {
        let s = flow.window.summary(now_ms, self.over);
        let requests = s.requests;
        let (value, breach) = match *when {
            When::RpsBelow(limit) => {
                // Never Unknown: no traffic at all is exactly what this rule is for.
                let rps = s.rps();
                let verdict = if rps < limit {
                    Verdict::Breach
                } else {
                    Verdict::Ok
                };
                return Evaluation {
                    verdict,
                    value: Some(rps),
                    requests,
                    pair: None,
                };
            }
            When::Latency {
                quantile,
                threshold,
            } => {
                let q = s.quantile(quantile.value());
                (q.map(|d| d.as_secs_f64()), q.is_some_and(|d| d > threshold))
            }
            When::ErrorRate(limit) => {
                let r = s.error_rate();
                (r, r.is_some_and(|r| r > limit))
            }
            When::TimeoutRate(limit) => {
                let r = s.timeout_rate();
                (r, r.is_some_and(|r| r > limit))
            }
            When::DeniedRate(limit) => {
                let r = s.denied_rate();
                (r, r.is_some_and(|r| r > limit))
            }
        };
        let verdict = if value.is_none() || requests < self.min_requests {
            Verdict::Unknown
        } else if breach {
            Verdict::Breach
        } else {
            Verdict::Ok
        };
        Evaluation {
            verdict,
            value,
            requests,
            pair: None,
        }
    }

    /// Width of the slots this rule's counts come in.
    pub fn slot_ms(&self) -> u64 {
        match self.condition {
            Condition::Threshold(_) | Condition::CircuitOpen => SLOT_MS,
            Condition::Burn { .. } => crate::stats::coarse::COARSE_SLOT_MS,
        }
    }

    /// Requests this rule counts as bad (slow, failed, timed out, budget-burning) in the slots
    /// holding `[from_ms, to_ms]`: the "requests affected" of a resolved notification.
    pub fn bad_in(&self, flow: &FlowState, from_ms: u64, to_ms: u64) -> u64 {
        let span = Duration::from_millis(to_ms.saturating_sub(from_ms));
        match &self.condition {
            Condition::Threshold(when) => {
                let s = flow.window.summary(to_ms, span);
                match *when {
                    When::Latency { threshold, .. } => s.count_above(threshold),
                    When::ErrorRate(_) => s.errors,
                    When::TimeoutRate(_) => s.timeouts,
                    When::DeniedRate(_) => s.denied,
                    // Missing traffic affects no request that was made.
                    When::RpsBelow(_) => 0,
                }
            }
            Condition::Burn { .. } => flow.slo.get().map_or(0, |c| c.counter().sum(to_ms, span).1),
            // The refused and the failed both count as errors of the flow.
            Condition::CircuitOpen => flow.window.summary(to_ms, span).errors,
        }
    }

    /// The `summary` annotation, e.g. "checkout: error rate 8.6% > 2% over 5m (412 requests)".
    /// `resolved` phrases a value back within its threshold.
    pub fn summary(&self, eval: &Evaluation, resolved: bool) -> String {
        let flow = &self.key.flow;
        let n = eval.requests;
        if self.condition == Condition::CircuitOpen {
            return match resolved {
                false => format!(
                    "{flow}: circuit open: the app failed, so requests are refused (or served a fallback) without calling it until a probe succeeds ({n} requests over {})",
                    format_duration(self.over)
                ),
                true => format!("{flow}: circuit closed: a probe succeeded"),
            };
        }
        let Some(value) = eval.value.filter(|_| eval.verdict != Verdict::Unknown) else {
            return format!(
                "{flow}: {}: no data over {} ({n} requests, fewer than {} needed)",
                self.subject(eval),
                self.window_text(eval),
                self.min_requests.max(1),
            );
        };
        let op = match (&self.condition, resolved) {
            (Condition::Threshold(When::RpsBelow(_)), false) => "<",
            (Condition::Threshold(When::RpsBelow(_)), true) => ">=",
            (_, false) => ">",
            (_, true) => "<=",
        };
        let extra = match &self.condition {
            Condition::Burn { objective, .. } => format!("SLO {}, ", format_percent(*objective)),
            Condition::Threshold(_) | Condition::CircuitOpen => String::new(),
        };
        format!(
            "{flow}: {} {} {op} {} over {} ({extra}{n} requests)",
            self.subject(eval),
            self.format_value(value),
            self.threshold_text(eval),
            self.window_text(eval),
        )
    }

    fn subject(&self, _eval: &Evaluation) -> &'static str {
        match &self.condition {
            Condition::Threshold(When::Latency { quantile, .. }) => quantile.label(),
            Condition::Threshold(When::ErrorRate(_)) => "error rate",
            Condition::Threshold(When::TimeoutRate(_)) => "timeout rate",
            Condition::Threshold(When::DeniedRate(_)) => "denied rate",
            Condition::Threshold(When::RpsBelow(_)) => "rps",
            Condition::Burn { .. } => "error budget burn rate",
            Condition::CircuitOpen => "circuit state",
        }
    }

    /// A value in the rule's unit as people read it: `1.23s`, `812ms`, `8.6%`, `0.02`, `20.1x`.
    pub fn format_value(&self, value: f64) -> String {
        match &self.condition {
            Condition::Threshold(When::Latency { .. }) => format_seconds(value),
            Condition::Threshold(
                When::ErrorRate(_) | When::TimeoutRate(_) | When::DeniedRate(_),
            ) => format_fraction(value),
            Condition::Threshold(When::RpsBelow(_)) => trim(&format!("{value:.3}")),
            Condition::Burn { .. } => format!("{}x", trim(&format!("{value:.1}"))),
            Condition::CircuitOpen => match value as u8 {
                0 => "closed".into(),
                1 => "open".into(),
                _ => "half_open".into(),
            },
        }
    }

    fn threshold_text(&self, eval: &Evaluation) -> String {
        match &self.condition {
            Condition::Threshold(When::Latency { threshold, .. }) => format_duration(*threshold),
            Condition::Threshold(
                When::ErrorRate(x) | When::TimeoutRate(x) | When::DeniedRate(x),
            ) => format_percent(*x),
            Condition::Threshold(When::RpsBelow(x)) => x.to_string(),
            Condition::Burn { pairs, .. } => {
                let pair = pairs.get(eval.pair.unwrap_or(0));
                pair.map_or_else(String::new, |p| format!("{}x", p.factor))
            }
            Condition::CircuitOpen => "closed".into(),
        }
    }

    fn window_text(&self, eval: &Evaluation) -> String {
        match &self.condition {
            Condition::Burn { pairs, .. } => match pairs.get(eval.pair.unwrap_or(0)) {
                Some(p) => format!(
                    "{} and {}",
                    format_duration(p.long),
                    format_duration(p.short)
                ),
                None => format_duration(self.over),
            },
            Condition::Threshold(_) | Condition::CircuitOpen => format_duration(self.over),
        }
    }
}

/// `1.23s` from one second up, else whole milliseconds (`812ms`), or hundredths below 10 ms.
pub fn format_seconds(secs: f64) -> String {
    if secs >= 1.0 {
        return format!("{}s", trim(&format!("{secs:.2}")));
    }
    let ms = secs * 1e3;
    if ms >= 10.0 {
        format!("{}ms", ms.round())
    } else {
        format!("{}ms", trim(&format!("{ms:.2}")))
    }
}

/// A fraction as a percentage with one decimal (two below 1 %): `8.6%`, `100%`, `0.45%`.
pub fn format_fraction(fraction: f64) -> String {
    let pct = fraction * 100.0;
    let text = if pct < 1.0 {
        format!("{pct:.2}")
    } else {
        format!("{pct:.1}")
    };
    format!("{}%", trim(&text))
}

fn trim(fixed: &str) -> String {
    if !fixed.contains('.') {
        return fixed.to_string();
    }
    fixed
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::Config;
    use crate::state::{Exemplars, FlowState};
    use crate::stats::{Clock, FlowWindow, ManualClock, Sample};

    const T0: u64 = 1_700_000_000_000;

    fn flow_config(alerts: &str) -> FlowConfig {
        // `access: public`: a flow with a rule, as `denied_rate` needs.
        let yaml = format!(
            "flows:\n  - name: checkout\n    match: /x\n    access: public\n    alerts:\n{alerts}"
        );
        let mut config = Config::parse(&yaml, "test.yaml").unwrap();
        config.flows.remove(0)
    }

    fn rule(when: &str) -> RuleDef {
        let cfg = flow_config(&format!("      - {{ {when} }}\n"));
        compile(&cfg).remove(0)
    }

    fn flow(now: u64) -> FlowState {
        FlowState {
            name: Arc::from("checkout"),
            window: FlowWindow::new(Duration::from_secs(600), now),
            active: Arc::new(crate::metrics::ActiveRequests::new(Arc::from("checkout"))),
            exemplars: Exemplars::default(),
            slo: Default::default(),
            in_flight: Default::default(),
            shapes: Default::default(),
            access_counts: Default::default(),
            resilience: Default::default(),
        }
    }

    fn record(f: &FlowState, at: u64, n: usize, latency_ms: u64, error: bool, timeout: bool) {
        for _ in 0..n {
            let sample = Sample {
                latency: Duration::from_millis(latency_ms),
                error,
                timeout,
                denied: false,
            };
            f.window.record(at, sample);
        }
    }

    #[test]
    fn defaults_and_names_come_from_the_config() {
        let r = rule("when: \"p95 > 800ms\"");
        assert_eq!(r.key.alertname, "FlowLatencyP95");
        assert_eq!(r.key.severity, "warning");
        assert_eq!(r.over, Duration::from_secs(300));
        assert_eq!(r.min_requests, 10);
        assert_eq!(r.timing.for_, Duration::from_secs(60));
        assert_eq!(r.timing.keep_firing_for, Duration::from_secs(60));
        assert_eq!(r.timing.no_data_after, Duration::from_secs(900));
        let r = rule("when: \"error_rate > 2%\", name: Boom, severity: page, over: 1m, for: 2m");
        assert_eq!(
            (r.key.alertname.as_str(), r.key.severity.as_str()),
            ("Boom", "page")
        );
        assert_eq!(r.timing.keep_firing_for, Duration::from_secs(120));
    }

    #[test]
    fn latency_quantile_threshold() {
        let clock = ManualClock::new(T0);
        let f = flow(T0);
        let r = rule("when: \"p95 > 800ms\", min_requests: 20");
        // 94 fast and 6 slow: p95 is a slow one (nearest rank 95).
        record(&f, T0, 94, 100, false, false);
        record(&f, T0, 6, 850, false, false);
        clock.advance(Duration::from_secs(1));
        let e = r.evaluate(&f, clock.now_ms());
        assert_eq!((e.verdict, e.requests), (Verdict::Breach, 100));
        let p95 = e.value.unwrap();
        assert!((p95 - 0.85).abs() / 0.85 <= 0.02, "{p95}");
        assert_eq!(
            r.summary(&e, false),
            format!(
                "checkout: p95 {} > 800ms over 5m (100 requests)",
                format_seconds(p95)
            )
        );
        assert_eq!(r.bad_in(&f, T0, clock.now_ms()), 6);
        // With 5 slow of 100 the 95th is fast: Ok.
        let g = flow(T0);
        record(&g, T0, 95, 100, false, false);
        record(&g, T0, 5, 850, false, false);
        assert_eq!(r.evaluate(&g, clock.now_ms()).verdict, Verdict::Ok);
        // Just under the threshold (within the 2 % quantile error of it) is not a breach.
        let h = flow(T0);
        record(&h, T0, 100, 770, false, false);
        assert_eq!(r.evaluate(&h, clock.now_ms()).verdict, Verdict::Ok);
    }

    #[test]
    fn every_quantile_picks_its_rank() {
        let f = flow(T0);
        // Latencies 1..=100 ms.
        for ms in 1..=100 {
            record(&f, T0, 1, ms, false, false);
        }
        for (q, expect_ms) in [("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0)] {
            let r = rule(&format!("when: \"{q} > 1ms\""));
            let v = r.evaluate(&f, T0).value.unwrap() * 1e3;
            assert!((v - expect_ms).abs() / expect_ms <= 0.02, "{q}: {v}");
        }
    }

    #[test]
    fn error_rate_rule() {
        let f = flow(T0);
        let r = rule("when: \"error_rate > 2%\"");
        record(&f, T0, 377, 10, false, false);
        record(&f, T0, 35, 10, true, false);
        let e = r.evaluate(&f, T0 + 1_000);
        assert_eq!(e.verdict, Verdict::Breach);
        assert_eq!(
            r.summary(&e, false),
            "checkout: error rate 8.5% > 2% over 5m (412 requests)"
        );
        assert_eq!(r.bad_in(&f, T0 - 300_000, T0 + 1_000), 35);
        record(&f, T0, 2_000, 10, false, false);
        let e = r.evaluate(&f, T0 + 1_000);
        assert_eq!(e.verdict, Verdict::Ok);
        assert_eq!(
            r.summary(&e, true),
            "checkout: error rate 1.5% <= 2% over 5m (2412 requests)"
        );
    }

    #[test]
    fn timeout_rate_rule() {
        let f = flow(T0);
        let r = rule("when: \"timeout_rate > 1%\", min_requests: 5");
        record(&f, T0, 90, 10, false, false);
        record(&f, T0, 10, 5_000, true, true);
        let e = r.evaluate(&f, T0);
        assert_eq!((e.verdict, e.value), (Verdict::Breach, Some(0.1)));
        assert_eq!(r.bad_in(&f, T0, T0), 10);
        assert!(
            r.summary(&e, false)
                .starts_with("checkout: timeout rate 10% > 1% over 5m")
        );
    }

    #[test]
    fn denied_rate_rule_counts_refusals_not_errors() {
        let f = flow(T0);
        let r = rule("when: \"denied_rate > 20%\", min_requests: 10");
        let denied = Sample {
            latency: Duration::from_micros(80),
            denied: true,
            ..Sample::default()
        };
        (0..3).for_each(|_| f.window.record(T0, denied));
        record(&f, T0, 5, 10, false, false);
        // 3 of 8: a breach by rate, but fewer requests than min_requests.
        assert_eq!(r.evaluate(&f, T0).verdict, Verdict::Unknown);
        record(&f, T0, 2, 10, false, false);
        let e = r.evaluate(&f, T0);
        assert_eq!((e.verdict, e.value), (Verdict::Breach, Some(0.3)));
        assert_eq!(r.bad_in(&f, T0, T0), 3);
        assert_eq!(
            r.summary(&e, false),
            "checkout: denied rate 30% > 20% over 5m (10 requests)"
        );
        // Refusals are not the app's errors.
        let errors = rule("when: \"error_rate > 1%\", min_requests: 1");
        assert_eq!(errors.evaluate(&f, T0).verdict, Verdict::Ok);
    }

    #[test]
    fn rps_below_rule_is_never_unknown() {
        let f = flow(T0);
        let r = rule("when: \"rps < 0.5\", over: 1m");
        // No traffic at all: a breach, not Unknown.
        let e = r.evaluate(&f, T0 + 60_000);
        assert_eq!(
            (e.verdict, e.value, e.requests),
            (Verdict::Breach, Some(0.0), 0)
        );
        assert_eq!(
            r.summary(&e, false),
            "checkout: rps 0 < 0.5 over 1m (0 requests)"
        );
        // 60 requests in the last minute (1 rps, covered ≥ 60 s) is Ok.
        let now = T0 + 120_000;
        for i in 0..60 {
            record(&f, now - 59_000 + i * 1_000, 1, 5, false, false);
        }
        let e = r.evaluate(&f, now);
        assert_eq!(e.verdict, Verdict::Ok);
        assert!(e.value.unwrap() > 0.5);
        assert_eq!(r.bad_in(&f, T0, now), 0);
    }

    #[test]
    fn min_requests_gate_makes_thin_windows_unknown() {
        let f = flow(T0);
        let r = rule("when: \"error_rate > 2%\", min_requests: 20");
        record(&f, T0, 19, 10, true, false);
        let e = r.evaluate(&f, T0);
        assert_eq!((e.verdict, e.requests), (Verdict::Unknown, 19));
        assert_eq!(
            r.summary(&e, false),
            "checkout: error rate: no data over 5m (19 requests, fewer than 20 needed)"
        );
        record(&f, T0, 1, 10, true, false);
        assert_eq!(r.evaluate(&f, T0).verdict, Verdict::Breach);
        // An empty window is Unknown whatever min_requests says.
        let r0 = rule("when: \"p99 > 1s\", min_requests: 0");
        assert_eq!(r0.evaluate(&flow(T0), T0).verdict, Verdict::Unknown);
    }

    #[test]
    fn the_window_slides() {
        let f = flow(T0);
        let r = rule("when: \"error_rate > 2%\", over: 1m, min_requests: 1");
        record(&f, T0, 10, 10, true, false);
        assert_eq!(r.evaluate(&f, T0 + 60_000).verdict, Verdict::Breach);
        // 65 s later the errors' slot has left the 1 m window.
        assert_eq!(r.evaluate(&f, T0 + 65_000).verdict, Verdict::Unknown);
    }

    #[test]
    fn value_formats() {
        assert_eq!(format_seconds(1.2345), "1.23s");
        assert_eq!(format_seconds(2.0), "2s");
        assert_eq!(format_seconds(0.8123), "812ms");
        assert_eq!(format_seconds(0.00125), "1.25ms");
        assert_eq!(format_fraction(0.0857), "8.6%");
        assert_eq!(format_fraction(1.0), "100%");
        assert_eq!(format_fraction(0.0045), "0.45%");
        assert_eq!(format_fraction(0.0), "0%");
    }
}
