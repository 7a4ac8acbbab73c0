//! One alert's lifecycle: inactive → pending → firing → resolved, driven by Breach/Ok/Unknown verdicts.
//!
//! Prometheus semantics (PRODUCT §6): a Breach starts `pending`; Breach held for `for` fires;
//! pending that sees Ok or Unknown drops back to inactive without a word. A firing alert needs
//! Ok held for `keep_firing_for` to resolve (hysteresis); Unknown keeps it firing for up to
//! `no_data_after` (3 × `over`), then it resolves with reason `no_data`. Pure: the caller
//! supplies the time, so every transition is testable with a manual clock.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The outcome of one evaluation of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The condition holds.
    Breach,
    /// The condition does not hold, on enough data.
    Ok,
    /// Too little data to judge (fewer than `min_requests`, or a window not yet covered).
    Unknown,
}

/// Where an alert is in its lifecycle; the `redline_alert_state` value is [`Phase::gauge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Condition not holding (or never seen).
    #[default]
    Inactive,
    /// Breach seen, not yet for `for`.
    Pending,
    /// Breach held for `for`; notifications go out.
    Firing,
}

impl Phase {
    /// 0 inactive, 1 pending, 2 firing.
    pub fn gauge(self) -> f64 {
        match self {
            Phase::Inactive => 0.0,
            Phase::Pending => 1.0,
            Phase::Firing => 2.0,
        }
    }

    /// `inactive`, `pending` or `firing`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Inactive => "inactive",
            Phase::Pending => "pending",
            Phase::Firing => "firing",
        }
    }
}

/// Why a firing alert resolved; becomes the `reason` annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Ok held for `keep_firing_for`.
    Recovered,
    /// Unknown for `no_data_after`.
    NoData,
    /// The rule is gone from the configuration.
    RuleRemoved,
}

impl Reason {
    /// Annotation value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Recovered => "recovered",
            Reason::NoData => "no_data",
            Reason::RuleRemoved => "rule_removed",
        }
    }
}

/// The durations a rule's lifecycle depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Breach must hold this long before firing.
    pub for_: Duration,
    /// Ok must hold this long before resolving.
    pub keep_firing_for: Duration,
    /// Unknown may last this long while firing (3 × `over`).
    pub no_data_after: Duration,
}

/// What a step did, for the caller to notify or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Nothing worth telling.
    Stay,
    /// inactive → pending.
    Pending,
    /// pending → inactive (silent).
    Cleared,
    /// → firing.
    Fired,
    /// firing → inactive; `fired_at_ms` is the episode's start.
    Resolved {
        /// Why.
        reason: Reason,
        /// When it started firing.
        fired_at_ms: u64,
    },
}

/// The lifecycle state of one alert (one flow × alertname × severity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AlertState {
    /// Current phase.
    pub phase: Phase,
    /// When the current pending/firing episode first breached (Prometheus `ActiveAt`).
    pub active_since_ms: Option<u64>,
    /// When it started firing (`startsAt`).
    pub fired_at_ms: Option<u64>,
    /// While firing: start of the current run of Ok verdicts.
    pub ok_since_ms: Option<u64>,
    /// While firing: start of the current run of Unknown verdicts.
    pub unknown_since_ms: Option<u64>,
}

fn held(since: u64, now: u64, need: Duration) -> bool {
    u128::from(now.saturating_sub(since)) >= need.as_millis()
}

impl AlertState {
    /// Apply one verdict observed at `now_ms`.
    pub fn step(&mut self, verdict: Verdict, now_ms: u64, timing: &Timing) -> Transition {
        match (self.phase, verdict) {
            (Phase::Inactive, Verdict::Breach) => {
                self.phase = Phase::Pending;
                self.active_since_ms = Some(now_ms);
                if timing.for_.is_zero() {
                    return self.fire(now_ms);
                }
                Transition::Pending
            }
            (Phase::Inactive, _) => Transition::Stay,
            (Phase::Pending, Verdict::Breach) => {
                let since = self.active_since_ms.unwrap_or(now_ms);
                if held(since, now_ms, timing.for_) {
                    return self.fire(now_ms);
                }
                Transition::Stay
            }
            (Phase::Pending, _) => {
                *self = AlertState::default();
                Transition::Cleared
            }
            (Phase::Firing, Verdict::Breach) => {
                self.ok_since_ms = None;
                self.unknown_since_ms = None;
                Transition::Stay
            }
            (Phase::Firing, Verdict::Ok) => {
                // Unknown between Ok verdicts neither breaks nor completes the Ok hold.
                self.unknown_since_ms = None;
                let since = *self.ok_since_ms.get_or_insert(now_ms);
                if held(since, now_ms, timing.keep_firing_for) {
                    return self.resolve(Reason::Recovered, now_ms);
                }
                Transition::Stay
            }
            (Phase::Firing, Verdict::Unknown) => {
                let since = *self.unknown_since_ms.get_or_insert(now_ms);
                if held(since, now_ms, timing.no_data_after) {
                    return self.resolve(Reason::NoData, now_ms);
                }
                Transition::Stay
            }
        }
    }

    /// End a firing episode for a reason outside the verdicts (its rule was removed).
    pub fn force_resolve(&mut self, reason: Reason, now_ms: u64) -> Transition {
        match self.phase {
            Phase::Firing => self.resolve(reason, now_ms),
            Phase::Pending => {
                *self = AlertState::default();
                Transition::Cleared
            }
            Phase::Inactive => Transition::Stay,
        }
    }

    /// After a restart the data behind the holds is gone; they start again from fresh verdicts.
    pub fn restart_holds(&mut self) {
        self.ok_since_ms = None;
        self.unknown_since_ms = None;
    }

    fn fire(&mut self, now_ms: u64) -> Transition {
        self.phase = Phase::Firing;
        self.fired_at_ms = Some(now_ms);
        self.ok_since_ms = None;
        self.unknown_since_ms = None;
        Transition::Fired
    }

    fn resolve(&mut self, reason: Reason, now_ms: u64) -> Transition {
        let fired_at_ms = self.fired_at_ms.unwrap_or(now_ms);
        *self = AlertState::default();
        Transition::Resolved {
            reason,
            fired_at_ms,
        }
    }
}

/// One alert's identity: state is kept per key, across reloads and restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AlertKey {
    /// Flow name.
    pub flow: String,
    /// `alertname` label.
    pub alertname: String,
    /// `severity` label.
    pub severity: String,
}

/// One evaluation of one rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Breach, Ok or Unknown.
    pub verdict: Verdict,
    /// Measured value in the rule's unit (seconds, fraction, requests/s, burn factor);
    /// `None` when there was nothing to measure.
    pub value: Option<f64>,
    /// Requests in the (long) window.
    pub requests: u64,
    /// For SLO rules, the pair the value comes from.
    pub pair: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Clock, ManualClock};

    const T0: u64 = 1_700_000_000_000;
    const S: Duration = Duration::from_secs(1);

    fn timing() -> Timing {
        Timing {
            for_: 60 * S,
            keep_firing_for: 120 * S,
            no_data_after: 900 * S,
        }
    }

    /// Runs `verdict` at the clock's time, then moves the clock on by `then`.
    fn at(a: &mut AlertState, c: &ManualClock, v: Verdict, then: Duration) -> Transition {
        let t = a.step(v, c.now_ms(), &timing());
        c.advance(then);
        t
    }

    fn firing(c: &ManualClock) -> AlertState {
        let mut a = AlertState::default();
        at(&mut a, c, Verdict::Breach, 60 * S);
        assert_eq!(at(&mut a, c, Verdict::Breach, 5 * S), Transition::Fired);
        a
    }

    #[test]
    fn inactive_stays_inactive_on_ok_and_unknown() {
        let c = ManualClock::new(T0);
        let mut a = AlertState::default();
        assert_eq!(at(&mut a, &c, Verdict::Ok, S), Transition::Stay);
        assert_eq!(at(&mut a, &c, Verdict::Unknown, S), Transition::Stay);
        assert_eq!(a, AlertState::default());
    }

    #[test]
    fn inactive_to_pending_on_breach_then_firing_after_for() {
        let c = ManualClock::new(T0);
        let mut a = AlertState::default();
        assert_eq!(at(&mut a, &c, Verdict::Breach, 30 * S), Transition::Pending);
        assert_eq!((a.phase, a.active_since_ms), (Phase::Pending, Some(T0)));
        // 30 s < for: still pending.
        assert_eq!(
            at(&mut a, &c, Verdict::Breach, 29_999 * S / 1000),
            Transition::Stay
        );
        assert_eq!(a.phase, Phase::Pending);
        // 59.999 s: still pending; 60 s: fires.
        assert_eq!(at(&mut a, &c, Verdict::Breach, S / 1000), Transition::Stay);
        assert_eq!(at(&mut a, &c, Verdict::Breach, S), Transition::Fired);
        assert_eq!(a.phase, Phase::Firing);
        assert_eq!(a.fired_at_ms, Some(T0 + 60_000));
        assert_eq!(a.active_since_ms, Some(T0));
    }

    #[test]
    fn pending_to_inactive_on_ok_silently() {
        let c = ManualClock::new(T0);
        let mut a = AlertState::default();
        at(&mut a, &c, Verdict::Breach, 10 * S);
        assert_eq!(at(&mut a, &c, Verdict::Ok, S), Transition::Cleared);
        assert_eq!(a, AlertState::default());
        // A later breach starts a new episode.
        assert_eq!(at(&mut a, &c, Verdict::Breach, S), Transition::Pending);
        assert_eq!(a.active_since_ms, Some(T0 + 11_000));
    }

    #[test]
    fn pending_to_inactive_on_unknown_silently() {
        let c = ManualClock::new(T0);
        let mut a = AlertState::default();
        at(&mut a, &c, Verdict::Breach, 59 * S);
        assert_eq!(at(&mut a, &c, Verdict::Unknown, S), Transition::Cleared);
        assert_eq!(a.phase, Phase::Inactive);
    }

    #[test]
    fn for_zero_fires_on_the_first_breach() {
        let mut a = AlertState::default();
        let t = Timing {
            for_: Duration::ZERO,
            ..timing()
        };
        assert_eq!(a.step(Verdict::Breach, T0, &t), Transition::Fired);
        assert_eq!(a.fired_at_ms, Some(T0));
    }

    #[test]
    fn firing_stays_firing_on_ok_shorter_than_keep_firing_for() {
        let c = ManualClock::new(T0);
        let mut a = firing(&c);
        for _ in 0..23 {
            // 23 × 5 s = 115 s of Ok < 120 s.
            assert_eq!(at(&mut a, &c, Verdict::Ok, 5 * S), Transition::Stay);
        }
        assert_eq!(a.phase, Phase::Firing);
        // A breach in the hold resets it: another full 120 s is needed.
        assert_eq!(at(&mut a, &c, Verdict::Breach, 5 * S), Transition::Stay);
        assert_eq!(a.ok_since_ms, None);
        assert_eq!(at(&mut a, &c, Verdict::Ok, 119 * S), Transition::Stay);
        assert_eq!(a.phase, Phase::Firing);
    }

    #[test]
    fn firing_to_resolved_after_keep_firing_for() {
        let c = ManualClock::new(T0);
        let mut a = firing(&c);
        let fired = a.fired_at_ms.unwrap();
        assert_eq!(at(&mut a, &c, Verdict::Ok, 120 * S), Transition::Stay);
        assert_eq!(
            at(&mut a, &c, Verdict::Ok, S),
            Transition::Resolved {
                reason: Reason::Recovered,
                fired_at_ms: fired
            }
        );
        assert_eq!(a, AlertState::default());
    }

    #[test]
    fn firing_with_unknown_is_kept_up_to_no_data_after_then_resolves_no_data() {
        let c = ManualClock::new(T0);
        let mut a = firing(&c);
        let fired = a.fired_at_ms.unwrap();
        // 3 × over = 900 s of Unknown: kept at 899 s.
        assert_eq!(at(&mut a, &c, Verdict::Unknown, 899 * S), Transition::Stay);
        assert_eq!(at(&mut a, &c, Verdict::Unknown, S), Transition::Stay);
        assert_eq!(a.phase, Phase::Firing);
        assert_eq!(
            at(&mut a, &c, Verdict::Unknown, S),
            Transition::Resolved {
                reason: Reason::NoData,
                fired_at_ms: fired
            }
        );
    }

    #[test]
    fn known_data_restarts_the_no_data_clock() {
        let c = ManualClock::new(T0);
        let mut a = firing(&c);
        at(&mut a, &c, Verdict::Unknown, 800 * S);
        at(&mut a, &c, Verdict::Breach, S);
        assert_eq!(a.unknown_since_ms, None);
        assert_eq!(at(&mut a, &c, Verdict::Unknown, 800 * S), Transition::Stay);
        assert_eq!(at(&mut a, &c, Verdict::Unknown, S), Transition::Stay);
        assert_eq!(a.phase, Phase::Firing);
    }

    #[test]
    fn unknown_inside_an_ok_hold_does_not_restart_it() {
        let c = ManualClock::new(T0);
        let mut a = firing(&c);
        at(&mut a, &c, Verdict::Ok, 60 * S);
        at(&mut a, &c, Verdict::Unknown, 60 * S);
        assert!(matches!(
            at(&mut a, &c, Verdict::Ok, S),
            Transition::Resolved {
                reason: Reason::Recovered,
                ..
            }
        ));
    }

    #[test]
    fn forced_resolution_and_restart() {
        let c = ManualClock::new(T0);
        let mut a = firing(&c);
        at(&mut a, &c, Verdict::Ok, S);
        a.restart_holds();
        assert_eq!(a.ok_since_ms, None);
        assert!(matches!(
            a.force_resolve(Reason::RuleRemoved, c.now_ms()),
            Transition::Resolved {
                reason: Reason::RuleRemoved,
                ..
            }
        ));
        let mut p = AlertState::default();
        p.step(Verdict::Breach, T0, &timing());
        assert_eq!(
            p.force_resolve(Reason::RuleRemoved, T0),
            Transition::Cleared
        );
        assert_eq!(Phase::Firing.gauge(), 2.0);
    }
}
