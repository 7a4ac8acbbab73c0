//! What a running Redline shares between tasks: the swappable runtime snapshot and the state that outlives reloads.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use dashmap::DashMap;

use crate::access::Access;
use crate::access_log::AccessLog;
use crate::audit_trail::AuditTrail;
use crate::config::Config;
use crate::flows::router::Router;
use crate::flows::templates::RouteTemplates;
use crate::metrics::{ActiveRequests, Registry, RouteMetrics};
use crate::redact::Redactor;
use crate::resilience::{BreakerPolicy, FallbackPolicy, FaultRule, FlowResilience, RetryPolicy};
use crate::stats::shapes::Shapes;
use crate::stats::slo::SloCounter;
use crate::stats::{Clock, FlowWindow};

/// Flow name used for requests no configured flow matches.
pub const UNMATCHED: &str = "unmatched";

/// Windows every flow keeps at least: `/api/flows` shows 1 m and 5 m, and the dashboard's
/// series shows 15 m (180 slots; the extra slot is margin for a reader racing the ticker).
/// About 322 KiB of counters per flow (184 slots), against 110 KiB for 5 m (63 slots).
pub const MIN_WINDOW: Duration = Duration::from_secs(15 * 60 + 5);

/// How many offending trace ids a flow remembers for alert annotations.
const EXEMPLARS: usize = 16;

/// When a bad request ended (ms) and its trace id.
type Exemplar = (u64, String);

/// Trace ids of a flow's recent bad (failed or slow) requests, newest last.
///
/// One small mutex per slot, taken with `try_lock`: a contended slot skips the
/// sample instead of making the request path wait.
#[derive(Debug)]
pub struct Exemplars {
    slots: Box<[std::sync::Mutex<Option<Exemplar>>]>,
    next: std::sync::atomic::AtomicUsize,
}

impl Default for Exemplars {
    fn default() -> Self {
        Exemplars {
            slots: (0..EXEMPLARS).map(|_| Default::default()).collect(),
            next: Default::default(),
        }
    }
}

impl Exemplars {
    /// Remember a bad request's trace id at `at_ms`.
    pub fn push(&self, at_ms: u64, trace_id: String) {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.slots.len();
        if let Ok(mut slot) = self.slots[i].try_lock() {
            *slot = Some((at_ms, trace_id));
        }
    }

    /// Up to `n` distinct trace ids recorded at or after `since_ms`, newest first.
    pub fn recent(&self, since_ms: u64, n: usize) -> Vec<String> {
        let mut all: Vec<(u64, String)> = self
            .slots
            .iter()
            .filter_map(|s| s.lock().ok().and_then(|g| g.clone()))
            .filter(|(at, _)| *at >= since_ms)
            .collect();
        all.sort_by_key(|e| std::cmp::Reverse(e.0));
        let mut out: Vec<String> = Vec::with_capacity(n);
        for (_, id) in all {
            if out.len() == n {
                break;
            }
            if !out.contains(&id) {
                out.push(id);
            }
        }
        out
    }
}

/// Per-flow state that survives reloads: statistics and gauges, keyed by flow name.
#[derive(Debug)]
pub struct FlowState {
    /// Flow name (the `flow` label).
    pub name: Arc<str>,
    /// Sliding-window statistics used by `/api/flows` and alerting.
    pub window: FlowWindow,
    /// `http_server_active_requests` gauges.
    pub active: Arc<ActiveRequests>,
    /// Trace ids of recent failed or slow requests.
    pub exemplars: Exemplars,
    /// Good/bad counts per minute for SLO burn rates; only flows with an `slo` get one.
    pub slo: OnceLock<SloCounter>,
    /// Requests in flight, counted only while the flow caps them
    /// (`max_concurrent_requests`, `concurrency.adaptive`); a request gives back its place
    /// where it took it.
    pub in_flight: AtomicUsize,
    /// Request shapes for `redline baseline record`; set only with `baseline.record.enabled`,
    /// so a disabled recorder costs the request path one empty `OnceLock` check.
    pub shapes: OnceLock<Shapes>,
    /// Requests its access rule let through and turned away (`/api/flows`).
    pub access_counts: [AtomicU64; 2],
    /// Retry budget and counters (and what else protects the flow), kept across reloads.
    pub resilience: FlowResilience,
}

impl FlowState {
    /// Whether none of its windows (the flow's and its SLO counter's, if any) holds a
    /// sample at `now_ms`.
    pub fn is_empty(&self, now_ms: u64) -> bool {
        self.window.is_empty(now_ms)
            && self.slo.get().is_none_or(|slo| {
                let counter = slo.counter();
                counter.sum(now_ms, counter.span()).0 == 0
            })
    }
}

/// One flow as the current configuration defines it.
#[derive(Debug)]
pub struct FlowRuntime {
    /// Long-lived state, shared with earlier and later runtimes.
    pub state: Arc<FlowState>,
    /// Time allowed for the upstream's response headers.
    pub timeout: Duration,
    /// Requests slower than this are "slow" (exemplars, trace keeping): the flow's lowest latency threshold.
    pub slow_threshold: Option<Duration>,
    /// Most requests of this flow in flight at once; more are shed (503 `overloaded`).
    pub max_concurrent: Option<usize>,
    /// The adaptive concurrency limit's bounds and window; `None` (the default) when off.
    pub adaptive: Option<crate::resilience::AdaptivePolicy>,
    /// `flows[].access`; `None` (most flows) costs one branch per request.
    pub access: Option<Arc<crate::config::AccessConfig>>,
    /// `flows[].audit`: every request goes to the audit trail (denials always do).
    pub audit: bool,
    /// How failed tries are repeated; `None` (the default) when retries are off.
    pub retry: Option<RetryPolicy>,
    /// When the flow's circuit opens; `None` (the default) when it has no breaker.
    pub breaker: Option<BreakerPolicy>,
    /// What users get when the app fails; `None` (the default) passes failures on.
    pub fallback: Option<Arc<FallbackPolicy>>,
    /// The configuration's fault for this flow (`fault:`); the API's are in its state.
    pub fault: Option<Arc<FaultRule>>,
}

/// An immutable snapshot built from one configuration; swapped atomically on reload.
///
/// Requests load it once and keep it, so in-flight requests finish under the
/// configuration they started with.
#[derive(Debug)]
pub struct Runtime {
    /// The configuration this snapshot was built from.
    pub config: Arc<Config>,
    /// Request → flow matcher.
    pub router: Router,
    /// Flows in config order (index = router flow index).
    pub flows: Vec<FlowRuntime>,
    /// Series handles per router route index.
    pub routes: Vec<Arc<RouteMetrics>>,
    /// The `unmatched` pseudo-flow.
    pub unmatched: FlowRuntime,
    /// Upstream scheme for request URIs.
    pub upstream_scheme: http::uri::Scheme,
    /// Upstream authority for request URIs.
    pub upstream_authority: http::uri::Authority,
    /// The upstream's host (IPv6 without brackets) and port (the scheme's default if
    /// none), worked out once: client spans carry them on every request.
    pub upstream_host: Arc<str>,
    /// See `upstream_host`.
    pub upstream_port: u16,
    /// Redaction rules for logs and exports.
    pub redactor: Arc<Redactor>,
    /// Caller identification (`auth:`) and the identity headers stripped from every request.
    pub access: Arc<Access>,
}

/// Errors that prevent a configuration from becoming a runtime.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No upstream configured.
    #[error(
        "no upstream configured: set `upstream:` in the config file, --upstream or REDLINE_UPSTREAM"
    )]
    NoUpstream,
    /// The upstream URL does not make a request URI.
    #[error("upstream {0:?} is not a usable http://host:port URL")]
    BadUpstream(String),
    /// `auth:` names a file that cannot be used.
    #[error(transparent)]
    Access(#[from] crate::access::AccessError),
    /// A flow restricts access but nothing can identify callers.
    #[error(
        "flow {0:?} has an access rule other than public, but `auth:` configures neither jwt nor api_keys"
    )]
    NoIdentification(String),
    /// The audit trail's directory cannot be used.
    #[error("cannot open the audit trail under data_dir: {0}")]
    Audit(std::io::Error),
}

/// State shared by the proxy, the admin API and background tasks.
///
/// Only what lower layers need: the parts built on top of it (hot reload, the alert
/// engine, telemetry) are wired to their users by `app::run`.
pub struct Shared {
    /// The current runtime; `load()` per request, `store()` on reload.
    pub runtime: ArcSwap<Runtime>,
    /// Metric series.
    pub registry: Arc<Registry>,
    /// Flow state by name, kept across reloads (a removed flow's until `retire_flows`).
    flows: DashMap<Arc<str>, Arc<FlowState>>,
    /// Route templates of unmatched traffic.
    pub templates: RouteTemplates,
    /// Time source for windows.
    pub clock: Arc<dyn Clock>,
    /// False while draining or before the first valid config.
    pub ready: AtomicBool,
    /// Access log writer.
    pub access_log: AccessLog,
    /// Process start, for uptime.
    pub started: Instant,
    /// Requests answered 502 `upstream_unavailable` since start: one relaxed add on the
    /// request path, read by `proxy::reach` to warn that the upstream is down.
    pub upstream_unavailable: AtomicU64,
    /// Proxied requests in flight, counted only while `limits.max_concurrent_requests`
    /// caps them.
    pub in_flight: AtomicUsize,
    /// The audit trail under `data_dir/audit/` (none without a `data_dir`).
    pub audit_trail: Option<AuditTrail>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl Shared {
    /// Build the shared state and the first runtime from `config`.
    pub fn new(
        config: Config,
        clock: Arc<dyn Clock>,
        access_log: AccessLog,
    ) -> Result<Arc<Shared>, BuildError> {
        let mut bounds = config.telemetry.metrics.buckets.clone();
        bounds.extend(config.latency_thresholds().iter().map(|d| d.as_secs_f64()));
        let registry = Arc::new(Registry::new(&bounds));
        let audit = (config.data_dir.as_deref(), config.audit_trail.max_file_size);
        let audit_trail = AuditTrail::for_config(audit, registry.audit_dropped.clone())
            .map_err(BuildError::Audit)?;
        let templates = RouteTemplates::new(config.routes.max_templates, config.routes.templating);
        let placeholder = Shared {
            runtime: ArcSwap::from_pointee(empty_runtime()),
            registry,
            flows: DashMap::new(),
            templates,
            clock,
            ready: AtomicBool::new(false),
            access_log,
            started: Instant::now(),
            upstream_unavailable: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            audit_trail,
        };
        let shared = Arc::new(placeholder);
        let runtime = shared.build_runtime(config)?;
        shared.install(runtime);
        shared
            .ready
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(shared)
    }

    /// Turn a validated configuration into a runtime, reusing flow state by name.
    pub fn build_runtime(&self, config: Config) -> Result<Runtime, BuildError> {
        let upstream = config.upstream.as_ref().ok_or(BuildError::NoUpstream)?;
        let bad = || BuildError::BadUpstream(upstream.uri.to_string());
        let upstream_scheme = upstream.uri.scheme().cloned().ok_or_else(bad)?;
        let upstream_authority = upstream.uri.authority().cloned().ok_or_else(bad)?;
        let previous = self.runtime.load_full();
        let access = Arc::new(Access::renewed(&config.auth, Some(&previous.access))?);
        drop(previous);
        crate::access::check_identification(&config, &access)
            .map_err(BuildError::NoIdentification)?;
        let patterns: Vec<_> = config.flows.iter().map(|f| f.patterns.clone()).collect();
        let router = Router::new(&patterns);
        let flows: Vec<FlowRuntime> = config
            .flows
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let longest = f.alerts.iter().map(|a| a.over).max().unwrap_or_default();
                let slow_threshold = f
                    .alerts
                    .iter()
                    .filter_map(|a| a.when.latency_threshold())
                    .chain(f.slo.as_ref().and_then(|s| s.latency))
                    .min();
                let state = self.flow_state(&f.name, longest);
                attach_slo(&state.slo, f.slo.as_ref(), self.clock.now_ms());
                attach_shapes(&state.shapes, &config);
                FlowRuntime {
                    state,
                    timeout: config.flow_timeout(i),
                    slow_threshold,
                    max_concurrent: f.max_concurrent_requests.map(NonZeroUsize::get),
                    adaptive: config.flow_concurrency(Some(i)),
                    access: f.access.clone().map(Arc::new),
                    audit: f.audit,
                    retry: config.flow_retries(i),
                    breaker: f.circuit_breaker.map(|b| b.policy()),
                    fallback: f.fallback.as_ref().and_then(|b| b.policy()).map(Arc::new),
                    fault: f.fault.as_ref().and_then(|x| x.rule()).map(Arc::new),
                }
            })
            .collect();
        let routes = router
            .routes()
            .iter()
            .map(|r| {
                self.registry
                    .route(&flows[r.flow].state.name, &Arc::from(r.route.as_str()))
            })
            .collect();
        let default_over = config.unmatched_alerts().iter().map(|a| a.over).max();
        let unmatched = FlowRuntime {
            state: self.flow_state(UNMATCHED, default_over.unwrap_or_default()),
            timeout: config.timeout,
            slow_threshold: None,
            max_concurrent: None,
            adaptive: config.flow_concurrency(None),
            access: None,
            audit: false,
            // Unmatched traffic follows the global block: the app's own endpoints.
            retry: config.retries.policy(),
            breaker: None,
            fallback: None,
            fault: None,
        };
        let redactor = Arc::new(Redactor::new(
            &config.redact.query_params,
            &config.redact.headers,
        ));
        Ok(Runtime {
            config: Arc::new(config),
            router,
            flows,
            routes,
            unmatched,
            upstream_host: host_of(&upstream_authority),
            upstream_port: port_of(&upstream_scheme, &upstream_authority),
            upstream_scheme,
            upstream_authority,
            redactor,
            access,
        })
    }

    fn flow_state(&self, name: &str, longest: Duration) -> Arc<FlowState> {
        let longest = longest.max(MIN_WINDOW);
        let now = self.clock.now_ms();
        if let Some(existing) = self.flows.get(name) {
            if existing.window.span() >= longest {
                return existing.clone();
            }
        }
        // New flow, or its alerts now need a longer window than it has: start a fresh one.
        let name: Arc<str> = Arc::from(name);
        let state = Arc::new(FlowState {
            name: name.clone(),
            window: FlowWindow::new(longest, now),
            active: self.registry.active(&name),
            exemplars: Exemplars::default(),
            slo: OnceLock::new(),
            in_flight: AtomicUsize::new(0),
            shapes: OnceLock::new(),
            access_counts: Default::default(),
            resilience: FlowResilience::default(),
        });
        self.flows.insert(name, state.clone());
        state
    }

    /// Every flow state kept (current flows, and removed ones not yet retired), for
    /// background tickers.
    pub fn all_flows(&self) -> Vec<Arc<FlowState>> {
        self.flows.iter().map(|e| e.value().clone()).collect()
    }

    /// Forget the flows that a reload removed, once their windows hold no sample at
    /// `now_ms`: their state (a few hundred KiB of counters each) and their series in the
    /// registry, so they leave `/metrics`. A flow that comes back later starts fresh.
    /// Returns the names retired. Call it from a ticker, with no `all_flows` list held.
    ///
    /// "Removed" means no runtime holds the state any more (not the current one, nor an
    /// older one that in-flight requests still use), so only the map holds it. That check
    /// and the removal happen under the map's lock, and `build_runtime` takes states from
    /// the map under the same lock: a reload that brings the flow back either gets the
    /// state before it is retired (so it is not) or makes a fresh one after.
    pub fn retire_flows(&self, now_ms: u64) -> Vec<Arc<str>> {
        let mut retired = Vec::new();
        self.flows.retain(|name, state| {
            let gone = Arc::strong_count(state) == 1 && state.is_empty(now_ms);
            if gone {
                retired.push(name.clone());
            }
            !gone
        });
        for name in &retired {
            self.registry.retire_flow(name);
            tracing::debug!(flow = %name, "Removed flow retired: no sample left in its windows.");
        }
        retired
    }

    /// Make `runtime` the one requests use, and publish its flows' owner and runbook
    /// (`redline_flow_info`) for dashboards that join on `flow`.
    pub fn install(&self, runtime: Runtime) {
        let info = runtime.config.flows.iter().map(|f| {
            [
                f.name.clone(),
                f.owner.clone().unwrap_or_default(),
                f.runbook.clone().unwrap_or_default(),
            ]
        });
        self.registry.flow_info.replace_all(info, 1.0);
        self.runtime.store(Arc::new(runtime));
    }

    /// Whether `/readyz` says ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Give a flow its SLO counter when its config has an SLO (a reload that adds one too), and
/// apply the SLO's latency. The counter then stays for the flow's life: its history survives a
/// reload that removes and re-adds the SLO, and a flow without one never gets a counter.
pub fn attach_slo(slot: &OnceLock<SloCounter>, slo: Option<&crate::config::Slo>, now_ms: u64) {
    let Some(slo) = slo else {
        return;
    };
    slot.get_or_init(|| SloCounter::new(slo.latency, now_ms))
        .set_latency(slo.latency);
}

/// Give a flow its shape reservoir when recording is on. Settings apply when the flow's
/// state is created (at start-up, or when a reload adds the flow): `baseline.record` needs a
/// restart to change, and a reload that turns it off leaves existing reservoirs in place.
fn attach_shapes(slot: &OnceLock<Shapes>, config: &Config) {
    let record = &config.baseline.record;
    if !record.enabled {
        return;
    }
    slot.get_or_init(|| {
        let never = |h: &str| {
            crate::config::NEVER_RECORDED.contains(&h)
                || config.redact.headers.iter().any(|r| r == h)
        };
        let headers = record
            .headers
            .iter()
            .filter(|h| !never(h))
            .filter_map(|h| http::HeaderName::from_bytes(h.as_bytes()).ok())
            .collect();
        Shapes::new(record.per_flow, headers, record.body_limit)
    });
}

fn empty_runtime() -> Runtime {
    Runtime {
        config: Arc::new(Config::default()),
        router: Router::new(&[]),
        flows: Vec::new(),
        routes: Vec::new(),
        unmatched: FlowRuntime {
            state: Arc::new(FlowState {
                name: Arc::from(UNMATCHED),
                window: FlowWindow::new(MIN_WINDOW, 0),
                active: Arc::new(ActiveRequests::new(Arc::from(UNMATCHED))),
                exemplars: Exemplars::default(),
                slo: OnceLock::new(),
                in_flight: AtomicUsize::new(0),
                shapes: OnceLock::new(),
                access_counts: Default::default(),
                resilience: FlowResilience::default(),
            }),
            timeout: Duration::from_secs(30),
            slow_threshold: None,
            max_concurrent: None,
            adaptive: None,
            access: None,
            audit: false,
            retry: None,
            breaker: None,
            fallback: None,
            fault: None,
        },
        upstream_scheme: http::uri::Scheme::HTTP,
        upstream_authority: http::uri::Authority::from_static("127.0.0.1:80"),
        upstream_host: Arc::from("127.0.0.1"),
        upstream_port: 80,
        redactor: Arc::new(Redactor::default()),
        access: Arc::new(Access::new(&Default::default()).expect("no files to read")),
    }
}

fn host_of(authority: &http::uri::Authority) -> Arc<str> {
    Arc::from(
        authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']'),
    )
}

fn port_of(scheme: &http::uri::Scheme, authority: &http::uri::Authority) -> u16 {
    authority
        .port_u16()
        .unwrap_or(if *scheme == http::uri::Scheme::HTTPS {
            443
        } else {
            80
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{ManualClock, Sample};

    /// A config with these flows (`name` or `name+slo`), each matching `GET /name/...`.
    fn with_flows(flows: &[&str]) -> Config {
        let mut yaml = String::from("upstream: http://127.0.0.1:9\nflows:\n");
        for f in flows {
            let (name, slo) = f.split_once('+').map_or((*f, false), |(n, _)| (n, true));
            yaml.push_str(&format!(
                "  - name: {name}\n    match: GET /{name}/{{id}}\n"
            ));
            if slo {
                yaml.push_str("    slo: { objective: 99% }\n");
            }
        }
        Config::parse(&yaml, "test.yaml").unwrap()
    }

    fn reload(shared: &Shared, flows: &[&str]) {
        let runtime = shared.build_runtime(with_flows(flows)).unwrap();
        shared.install(runtime);
    }

    fn kept(shared: &Shared) -> Vec<String> {
        let mut names: Vec<String> = shared
            .all_flows()
            .iter()
            .map(|f| f.name.to_string())
            .collect();
        names.sort();
        names
    }

    fn request(shared: &Shared, flow: &str, now_ms: u64) {
        let runtime = shared.runtime.load();
        let rt = runtime
            .flows
            .iter()
            .find(|f| &*f.state.name == flow)
            .unwrap();
        let sample = Sample::default();
        rt.state.window.record(now_ms, sample);
        if let Some(slo) = rt.state.slo.get() {
            slo.record(now_ms, &sample);
        }
        let route = runtime.routes.iter().find(|r| &*r.flow == flow).unwrap();
        route.record(0, 200, crate::metrics::ErrorType::None, 0.01, None);
    }

    #[test]
    fn a_removed_flow_is_retired_once_its_windows_are_empty_and_comes_back_fresh() {
        let t0 = 1_700_000_000_000;
        let clock = Arc::new(ManualClock::new(t0));
        let shared = Shared::new(
            with_flows(&["a", "b", "c+slo", "e"]),
            clock.clone(),
            AccessLog::off(),
        )
        .unwrap();
        let first = shared.runtime.load_full();
        request(&shared, "a", t0);
        reload(&shared, &["b", "c+slo"]);
        request(&shared, "c", t0);
        reload(&shared, &["b", "d"]);
        let scrape = shared.registry.render();
        assert!(scrape.contains("flow=\"e\""), "{scrape}");
        // Owner and runbook info follows the installed config at once.
        let info: Vec<_> = shared.registry.flow_info.snapshot().series;
        assert_eq!(info.len(), 2, "b and d: {info:?}");
        assert_eq!(info[0].labels[0], ("flow", "b".to_string()));

        // A runtime still in use (a request in flight under it) keeps its flows.
        assert_eq!(shared.retire_flows(t0), Vec::<Arc<str>>::new());
        drop(first);
        // Once nothing uses them, flows that hold no sample go at once; `a` and `c` stay.
        assert_eq!(shared.retire_flows(t0), vec![Arc::<str>::from("e")]);
        assert_eq!(kept(&shared), ["a", "b", "c", "d", UNMATCHED]);
        let scrape = shared.registry.render();
        assert!(!scrape.contains("flow=\"e\""), "{scrape}");
        assert!(scrape.contains("flow=\"a\""), "{scrape}");

        // `a`'s sample leaves its window (15 m 5 s, rounded to 5 s slots) exactly then.
        let span = MIN_WINDOW.as_millis() as u64;
        let last_slot_end = t0 - t0 % 5_000 + 5_000;
        assert_eq!(
            shared.retire_flows(last_slot_end + span - 1),
            Vec::<Arc<str>>::new()
        );
        let retired = shared.retire_flows(last_slot_end + span);
        assert_eq!(retired, vec![Arc::<str>::from("a")]);
        assert_eq!(kept(&shared), ["b", "c", "d", UNMATCHED]);
        let scrape = shared.registry.render();
        assert!(!scrape.contains("flow=\"a\""), "{scrape}");
        assert!(scrape.contains("flow=\"b\""), "{scrape}");

        // `c` has an SLO: its 3-day counter must empty too.
        assert!(scrape.contains("flow=\"c\""), "{scrape}");
        let three_days = 3 * 24 * 3_600_000 + 60_000;
        let retired = shared.retire_flows(t0 + three_days + 60_000);
        assert_eq!(retired, vec![Arc::<str>::from("c")]);

        // Re-added, a flow starts fresh: a new window and new series.
        let now = t0 + three_days + 120_000;
        clock.set(now);
        reload(&shared, &["a", "b", "d"]);
        let a = shared.runtime.load().flows[0].state.clone();
        assert_eq!(a.window.created_ms(), now);
        assert!(a.window.is_empty(now));
        assert!(shared.registry.render().contains("flow=\"a\""));
        // And a current flow, empty or not, is never retired.
        assert_eq!(
            shared.retire_flows(now + three_days),
            Vec::<Arc<str>>::new()
        );
    }

    #[test]
    fn upstream_host_and_port_are_worked_out_once_without_brackets() {
        for (url, host, port) in [
            ("http://[::1]:9000", "::1", 9000),
            ("http://app.internal", "app.internal", 80),
            ("http://127.0.0.1:3000", "127.0.0.1", 3000),
        ] {
            let config = Config {
                upstream: Some(crate::config::Upstream::parse(url).unwrap()),
                ..Config::default()
            };
            let shared = Shared::new(
                config,
                Arc::new(crate::stats::ManualClock::new(0)),
                crate::access_log::AccessLog::off(),
            )
            .unwrap();
            let rt = shared.runtime.load_full();
            assert_eq!(
                (&*rt.upstream_host, rt.upstream_port),
                (host, port),
                "{url}"
            );
        }
    }
}
