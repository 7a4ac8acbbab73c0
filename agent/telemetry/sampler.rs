//! Head sampling as the OpenTelemetry SDKs do it: `always_on`, `always_off`, `traceidratio` and their parent-based forms.

/// What decides for a trace that starts here (no parent, or a sampler that ignores it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Root {
    /// Keep every trace.
    AlwaysOn,
    /// Keep no trace.
    AlwaysOff,
    /// Keep this fraction of traces, decided from the trace id alone.
    Ratio(f64),
}

/// A head sampler: an optional parent-based wrapper around a [`Root`] decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampler {
    /// Follow the caller's sampled flag when a `traceparent` (or B3) came in.
    pub parent_based: bool,
    /// The decision for traces without a parent.
    pub root: Root,
}

impl Default for Sampler {
    /// `parentbased_always_on`, the specification's default.
    fn default() -> Self {
        Sampler {
            parent_based: true,
            root: Root::AlwaysOn,
        }
    }
}

impl Sampler {
    /// The sampler an `OTEL_TRACES_SAMPLER` value names, with `ratio` for the ratio forms.
    ///
    /// `None` for values the specification lists but Redline does not implement
    /// (`jaeger_remote`, `xray`) and for unknown names.
    pub fn named(name: &str, ratio: f64) -> Option<Sampler> {
        let (parent_based, root) = match name.trim().to_ascii_lowercase().as_str() {
            "always_on" => (false, Root::AlwaysOn),
            "always_off" => (false, Root::AlwaysOff),
            "traceidratio" => (false, Root::Ratio(ratio)),
            "parentbased_always_on" => (true, Root::AlwaysOn),
            "parentbased_always_off" => (true, Root::AlwaysOff),
            "parentbased_traceidratio" => (true, Root::Ratio(ratio)),
            _ => return None,
        };
        Some(Sampler { parent_based, root })
    }

    /// Whether a request's spans are recorded, given its trace id and the caller's sampled flag.
    pub fn should_sample(&self, trace_id: &[u8; 16], parent_sampled: Option<bool>) -> bool {
        if let (true, Some(sampled)) = (self.parent_based, parent_sampled) {
            return sampled;
        }
        match self.root {
            Root::AlwaysOn => true,
            Root::AlwaysOff => false,
            Root::Ratio(ratio) => ratio_keeps(ratio, trace_id),
        }
    }

    /// `always_off` means no traces at all: not even failed or slow requests are kept.
    pub fn never(&self) -> bool {
        !self.parent_based && self.root == Root::AlwaysOff
    }

    /// The `OTEL_TRACES_SAMPLER` spelling, with the ratio, for the start-up log line.
    pub fn describe(&self) -> String {
        let prefix = if self.parent_based {
            "parentbased_"
        } else {
            ""
        };
        match self.root {
            Root::AlwaysOn => format!("{prefix}always_on"),
            Root::AlwaysOff => format!("{prefix}always_off"),
            Root::Ratio(r) => format!("{prefix}traceidratio({r})"),
        }
    }
}

/// The SDKs' deterministic rule: the low 63 bits of the trace id's last 8 bytes below `ratio × 2⁶³`,
/// so every service sampling the same trace at the same ratio agrees.
fn ratio_keeps(ratio: f64, trace_id: &[u8; 16]) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio.is_nan() || ratio <= 0.0 {
        return false;
    }
    let bound = (ratio * (1u64 << 63) as f64) as u64;
    let mut low = [0u8; 8];
    low.copy_from_slice(&trace_id[8..]);
    (u64::from_be_bytes(low) >> 1) < bound
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(low: u64) -> [u8; 16] {
        let mut t = [7u8; 16];
        t[8..].copy_from_slice(&low.to_be_bytes());
        t
    }

    #[test]
    fn every_standard_name_parses() {
        for (name, parent_based, root) in [
            ("always_on", false, Root::AlwaysOn),
            ("always_off", false, Root::AlwaysOff),
            ("traceidratio", false, Root::Ratio(0.5)),
            ("parentbased_always_on", true, Root::AlwaysOn),
            ("parentbased_always_off", true, Root::AlwaysOff),
            ("parentbased_traceidratio", true, Root::Ratio(0.5)),
        ] {
            let s = Sampler::named(name, 0.5).unwrap();
            assert_eq!((s.parent_based, s.root), (parent_based, root), "{name}");
        }
        assert!(Sampler::named("jaeger_remote", 1.0).is_none());
        assert_eq!(Sampler::default().describe(), "parentbased_always_on");
    }

    #[test]
    fn ratio_is_decided_by_the_trace_id() {
        let half = Sampler::named("traceidratio", 0.5).unwrap();
        assert!(half.should_sample(&id(0), None));
        assert!(!half.should_sample(&id(u64::MAX), None));
        let kept = (0..10_000u64)
            .filter(|_| half.should_sample(&id(fastrand::u64(..)), None))
            .count();
        assert!((4_500..5_500).contains(&kept), "{kept}");
        let none = Sampler::named("traceidratio", 0.0).unwrap();
        assert!(!none.should_sample(&id(0), None));
        let all = Sampler::named("traceidratio", 1.0).unwrap();
        assert!(all.should_sample(&id(u64::MAX), None));
    }

    #[test]
    fn parent_based_follows_the_caller_and_plain_ignores_it() {
        let pb = Sampler::named("parentbased_always_off", 1.0).unwrap();
        assert!(pb.should_sample(&id(1), Some(true)));
        assert!(!pb.should_sample(&id(1), None));
        let on = Sampler::named("always_on", 1.0).unwrap();
        assert!(on.should_sample(&id(1), Some(false)));
        assert!(Sampler::named("always_off", 1.0).unwrap().never());
        assert!(!pb.never());
    }
}
