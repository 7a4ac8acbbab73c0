//! Configuration model: the YAML file of PRODUCT.md §2, parsed and validated with file:line:column errors.
//!
//! Values are parsed inside serde visitors (see `de`) so every error points at the offending
//! scalar; checks spanning several nodes run afterwards and locate their node with `locate`.

mod access;
mod alert;
mod baseline;
mod breaker;
mod concurrency;
mod de;
mod fallback;
mod flow;
mod locate;
mod receiver;
mod report;
mod retries;
mod suggest;
mod telemetry;
mod units;
mod upstream;
mod validate;

#[cfg(test)]
mod tests;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

pub use access::{
    AccessConfig, ApiKeysConfig, AuditTrailConfig, AuthConfig, Expect, ForwardConfig, JwtConfig,
    PolicyTest, Rule,
};
pub use alert::{AlertRule, Quantile, Severity, Slo, When, default_alerts};
pub use baseline::{BaselineConfig, BaselineRequest, FlowBaseline, NEVER_RECORDED, RecordConfig};
pub use breaker::BreakerConfig;
pub use concurrency::{AdaptiveConfig, ConcurrencyConfig};
pub use fallback::{FallbackConfig, FaultConfig, StaleConfig, StaticConfig};
pub use flow::{FlowConfig, UNMATCHED_FLOW, pattern_text, validate_flow_name};
pub use receiver::{FLAG_WEBHOOK_NAME, FLAG_WEBHOOK_SECRET_ENV, ReceiverConfig, ReceiverKind};
pub use report::{REDACTED, redact_url};
pub use retries::{BudgetConfig, MAX_ATTEMPTS, RetryConfig};
pub use telemetry::{
    AccessLogFormat, DEFAULT_BUCKETS, MetricsConfig, OtlpConfig, OtlpProtocol, TelemetryConfig,
    TracesConfig,
};
pub use units::{
    format_duration, format_percent, parse_duration, parse_listen, parse_percent,
    parse_positive_duration, parse_size,
};
pub use upstream::{Upstream, UpstreamConnections};

use de::{Parse, duration, listen, non_empty, positive_duration, size};

/// The whole configuration, with every default applied.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping of Redline settings"
)]
pub struct Config {
    /// `service.name` of the telemetry (default `redline`; `OTEL_SERVICE_NAME` overrides).
    #[serde(deserialize_with = "non_empty")]
    pub service: String,
    /// Proxy listener (default `127.0.0.1:8080`: a dev server bound to localhost must not be
    /// exposed on every interface by the proxy in front of it).
    #[serde(deserialize_with = "listen")]
    pub listen: SocketAddr,
    /// The app behind Redline; required to run (see [`Config::validate_runnable`]) but not
    /// to check a file, since `--upstream` may supply it.
    pub upstream: Option<Upstream>,
    /// Default upstream timeout, up to response headers (default 30s).
    #[serde(deserialize_with = "positive_duration")]
    pub timeout: Duration,
    /// Admin listener.
    pub admin: AdminConfig,
    /// Critical flows, in config order (which breaks ties between equally specific patterns).
    pub flows: Vec<FlowConfig>,
    /// Automatic route templates for unmatched traffic.
    pub routes: RoutesConfig,
    /// Alert evaluation and receivers.
    pub alerting: AlertingConfig,
    /// OTLP, sampling, metrics and access log.
    pub telemetry: TelemetryConfig,
    /// What is hidden from traces, logs and the dashboard.
    pub redact: RedactConfig,
    /// Directory for the durable alert outbox and alert states; in memory when unset.
    pub data_dir: Option<PathBuf>,
    /// Redline extension: proxy safety limits.
    pub limits: Limits,
    /// Redline extension: connections to the upstream (caps, queue, connect timeout).
    pub upstream_connections: UpstreamConnections,
    /// Request shapes kept for `redline baseline record` (off by default).
    pub baseline: BaselineConfig,
    /// Redline extension: how callers are identified (JWTs, API keys) for `flows[].access`.
    pub auth: AuthConfig,
    /// Redline extension: the audit trail's files (`flows[].audit`, denials).
    pub audit_trail: AuditTrailConfig,
    /// Redline extension: expected access decisions, checked by `redline check`.
    pub policy_tests: Vec<PolicyTest>,
    /// Redline extension: retries of failed tries, for flows without their own `retries:`.
    pub retries: RetryConfig,
    /// Redline extension: the adaptive concurrency limit, for flows without their own
    /// `concurrency:` and for unmatched traffic.
    pub concurrency: ConcurrencyConfig,
    /// The file this config was loaded from; not a YAML key.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// `admin:`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping such as { listen: 127.0.0.1:9901 }"
)]
pub struct AdminConfig {
    /// Admin listener (default `127.0.0.1:9901`).
    #[serde(deserialize_with = "listen")]
    pub listen: SocketAddr,
    /// File holding the bearer token for POST/DELETE (or env `REDLINE_ADMIN_TOKEN`).
    pub token_file: Option<PathBuf>,
    /// Redline extension: require the token for GET endpoints too (default false).
    pub protect_reads: bool,
}

/// `routes:`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping such as { templating: auto }"
)]
pub struct RoutesConfig {
    /// YAML `auto` (true, the default) or `off`: template unmatched paths as `/users/{id}`.
    #[serde(deserialize_with = "templating")]
    pub templating: bool,
    /// Distinct templates kept before the rest fold into `/{other}` (default 200).
    pub max_templates: usize,
}

/// `alerting:`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping such as { eval_interval: 5s, receivers: [...] }"
)]
pub struct AlertingConfig {
    /// How often rules are evaluated (default 5s).
    #[serde(deserialize_with = "positive_duration")]
    pub eval_interval: Duration,
    /// Re-notify a firing alert this often (default 4h).
    #[serde(deserialize_with = "positive_duration")]
    pub repeat_interval: Duration,
    /// Where notifications go; every alert goes to every receiver.
    pub receivers: Vec<ReceiverConfig>,
    /// Redline extension: base URL people reach the admin listener at, for the links in
    /// alerts (`dashboard_url`, `generatorURL`); default `http://<admin address>`.
    #[serde(deserialize_with = "external_url")]
    pub external_url: Option<String>,
    /// Redline extension: rules judged on all traffic (the `unmatched` flow) while no flows
    /// are configured, so a drop-in Redline can alert before anyone writes a flow. Default
    /// [`default_alerts`]; `[]` turns them off.
    pub default_alerts: Vec<AlertRule>,
}

/// `redact:`. Names are lowercased and matched case-insensitively. Setting a list replaces
/// its default rather than extending it, so keep the defaults you still want.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping such as { headers: [authorization] }"
)]
pub struct RedactConfig {
    /// Header names whose values are never recorded.
    #[serde(deserialize_with = "header_names")]
    pub headers: Vec<String>,
    /// Query parameter names whose values become `REDACTED` in `url.query` and logs.
    #[serde(deserialize_with = "lowercase_names")]
    pub query_params: Vec<String>,
}

/// `limits:` (a Redline extension to PRODUCT §2): proxy safety limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping such as { header_read_timeout: 10s }"
)]
pub struct Limits {
    /// A client must send its whole request head within this (default 10s).
    #[serde(deserialize_with = "positive_duration")]
    pub header_read_timeout: Duration,
    /// Longest wait for the next bytes of a request body (default 60s, nginx's
    /// `client_body_timeout`): a body that trickles is answered 408 and closed.
    #[serde(deserialize_with = "positive_duration")]
    pub body_read_timeout: Duration,
    /// Larger request header blocks get 431 (default 64 KiB; accepts `65536`, `64KiB`).
    #[serde(deserialize_with = "size")]
    pub max_header_bytes: usize,
    /// Most proxied requests in flight at once, all flows together; more get 503
    /// `overloaded` (default 0: no cap).
    pub max_concurrent_requests: usize,
    /// In-flight requests get this long to finish on shutdown (default 30s; 0 = no wait).
    #[serde(deserialize_with = "duration")]
    pub shutdown_grace: Duration,
}

/// Default service name. OpenTelemetry's would be `unknown_service`; naming the sidecar
/// keeps dashboards readable until the user sets `service`.
pub const DEFAULT_SERVICE: &str = "redline";

/// Default redacted headers.
pub const DEFAULT_REDACT_HEADERS: [&str; 5] = [
    "authorization",
    "cookie",
    "set-cookie",
    "proxy-authorization",
    "x-api-key",
];

/// Default redacted query parameters.
pub const DEFAULT_REDACT_QUERY_PARAMS: [&str; 7] = [
    "token",
    "access_token",
    "api_key",
    "key",
    "password",
    "secret",
    "signature",
];

impl Default for Config {
    fn default() -> Config {
        Config {
            service: DEFAULT_SERVICE.into(),
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            upstream: None,
            timeout: Duration::from_secs(30),
            admin: AdminConfig::default(),
            flows: Vec::new(),
            routes: RoutesConfig::default(),
            alerting: AlertingConfig::default(),
            telemetry: TelemetryConfig::default(),
            redact: RedactConfig::default(),
            data_dir: None,
            limits: Limits::default(),
            upstream_connections: UpstreamConnections::default(),
            baseline: BaselineConfig::default(),
            auth: AuthConfig::default(),
            audit_trail: AuditTrailConfig::default(),
            policy_tests: Vec::new(),
            retries: RetryConfig::default(),
            concurrency: ConcurrencyConfig::default(),
            source: None,
        }
    }
}

impl Default for AdminConfig {
    fn default() -> AdminConfig {
        AdminConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 9901)),
            token_file: None,
            protect_reads: false,
        }
    }
}

impl Default for RoutesConfig {
    fn default() -> RoutesConfig {
        RoutesConfig {
            templating: true,
            max_templates: 200,
        }
    }
}

impl Default for AlertingConfig {
    fn default() -> AlertingConfig {
        AlertingConfig {
            eval_interval: Duration::from_secs(5),
            repeat_interval: Duration::from_secs(4 * 3600),
            receivers: Vec::new(),
            external_url: None,
            default_alerts: default_alerts(),
        }
    }
}

impl Default for RedactConfig {
    fn default() -> RedactConfig {
        RedactConfig {
            headers: DEFAULT_REDACT_HEADERS.map(String::from).to_vec(),
            query_params: DEFAULT_REDACT_QUERY_PARAMS.map(String::from).to_vec(),
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
            max_concurrent_requests: 0,
            max_header_bytes: 64 << 10,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

fn templating<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Parse::new("auto or off", |s| match s.trim() {
        "auto" => Ok(true),
        "off" => Ok(false),
        other => Err(format!(
            "invalid templating {other:?}; expected auto or off"
        )),
    })
    .one(d)
}

fn external_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Parse::new("a URL such as https://redline.example.com", |s| {
        let text = s.trim().trim_end_matches('/');
        let uri: http::Uri = text.parse().map_err(|_| {
            format!("invalid external_url {s:?}; expected e.g. https://redline.example.com")
        })?;
        let web = matches!(uri.scheme_str(), Some("http" | "https"));
        if !web || uri.authority().is_none() {
            return Err(format!(
                "invalid external_url {s:?}; expected an http:// or https:// URL with a host"
            ));
        }
        Ok(text.to_string())
    })
    .optional(d)
}

fn header_names<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Parse::new("a header name such as authorization", |s| {
        http::HeaderName::from_bytes(s.trim().as_bytes())
            .map(|h| h.as_str().to_string())
            .map_err(|_| format!("invalid header name {s:?}"))
    })
    .list(d)
}

fn lowercase_names<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Parse::new("a query parameter name such as token", |s| {
        let name = s.trim();
        if name.is_empty() {
            return Err("query parameter name must not be empty".into());
        }
        Ok(name.to_ascii_lowercase())
    })
    .list(d)
}

/// A configuration error, positioned in its file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    /// The file (or origin label) the config came from.
    pub file: String,
    /// 1-based line; 0 when the error concerns the file as a whole (e.g. it cannot be read).
    pub line: usize,
    /// 1-based column; 0 together with `line`.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

impl ConfigError {
    /// An error at a position.
    pub fn at(file: &str, line: usize, column: usize, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }

    /// An error about the file as a whole.
    pub fn whole_file(file: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::at(file, 0, 0, message)
    }

    fn render(&self) -> String {
        if self.line == 0 {
            return format!("{}: {}", self.file, self.message);
        }
        format!(
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }

    /// yaml_serde appends " at line L column C" to its messages; the position moves to the
    /// front instead, in the compiler-style form editors can jump to.
    fn from_yaml(file: &str, err: &yaml_serde::Error) -> ConfigError {
        let text = err.to_string();
        // Errors without a mark (e.g. several documents) concern the whole file; line 1
        // column 1 still lets editors open it.
        let Some(loc) = err.location() else {
            return ConfigError::at(file, 1, 1, text);
        };
        let suffix = format!(" at line {} column {}", loc.line(), loc.column());
        let message = suggest::improve(&text.replacen(&suffix, "", 1));
        ConfigError::at(file, loc.line(), loc.column(), message)
    }
}

/// Where a file stops being UTF-8, so an editor can jump to the stray byte.
fn not_utf8(origin: &str, e: &std::string::FromUtf8Error) -> ConfigError {
    let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
    let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
    let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    // Valid up to here, so this slice is UTF-8: count characters, not bytes.
    let column = 1 + String::from_utf8_lossy(&valid[line_start..])
        .chars()
        .count();
    let byte = e.as_bytes()[valid.len()];
    ConfigError::at(
        origin,
        line,
        column,
        format!("byte 0x{byte:02x} is not UTF-8; expected a UTF-8 text file"),
    )
}

/// The most a config file (or a fallback's `body_file`) may hold. Real ones are kilobytes;
/// the cap keeps a path pointing at `/dev/zero` or a runaway file from exhausting memory.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// The whole file at `path`, or an error once it holds more than [`MAX_FILE_BYTES`].
pub(crate) fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB",
            MAX_FILE_BYTES >> 20
        )));
    }
    Ok(bytes)
}

impl Config {
    /// Read and parse a config file; errors name the file as given.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let bytes = read_capped(path).map_err(|e| {
            ConfigError::whole_file(&origin, format!("cannot read config file: {e}"))
        })?;
        let text = String::from_utf8(bytes).map_err(|e| not_utf8(&origin, &e))?;
        let mut config = fallback::with_base(path.parent(), || Config::parse(&text, &origin))?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parse config text; `origin` names it in error messages. An empty document (or one
    /// with only comments) is the default config.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        if let Some((line, column)) = locate::too_deep(text) {
            let max = locate::MAX_FLOW_DEPTH;
            return Err(ConfigError::at(
                origin,
                line,
                column,
                format!("`[`/`{{` nested more than {max} levels deep; expected a configuration"),
            ));
        }
        locate::check_duplicate_keys(text).map_err(|e| ConfigError::from_yaml(origin, &e))?;
        let parsed: Option<Config> =
            yaml_serde::from_str(text).map_err(|e| ConfigError::from_yaml(origin, &e))?;
        let config = parsed.unwrap_or_default();
        validate::check(&config, text, origin)?;
        Ok(config)
    }

    /// Checks that only matter when proxying, such as having an upstream.
    pub fn validate_runnable(&self) -> Result<(), ConfigError> {
        if self.upstream.is_some() {
            return Ok(());
        }
        let origin = self
            .source
            .as_ref()
            .map_or_else(|| "configuration".to_string(), |p| p.display().to_string());
        Err(ConfigError::whole_file(
            &origin,
            "no upstream: set `upstream: http://HOST:PORT` in the file, or pass --upstream or REDLINE_UPSTREAM",
        ))
    }

    /// The upstream timeout of a flow: its own, else the global one.
    pub fn flow_timeout(&self, flow_index: usize) -> Duration {
        self.flows
            .get(flow_index)
            .and_then(|f| f.timeout)
            .unwrap_or(self.timeout)
    }

    /// The retry policy of a flow: its own `retries:`, else the global one; `None` when off.
    pub fn flow_retries(&self, flow_index: usize) -> Option<crate::resilience::RetryPolicy> {
        self.flows
            .get(flow_index)
            .and_then(|f| f.retries.as_ref())
            .unwrap_or(&self.retries)
            .policy()
    }

    /// The adaptive concurrency limit of a flow (`None`: unmatched traffic): its own
    /// `concurrency:`, else the global one; `None` when off.
    pub fn flow_concurrency(
        &self,
        flow_index: Option<usize>,
    ) -> Option<crate::resilience::AdaptivePolicy> {
        flow_index
            .and_then(|i| self.flows.get(i))
            .and_then(|f| f.concurrency.as_ref())
            .unwrap_or(&self.concurrency)
            .adaptive
            .map(|a| a.policy())
    }

    /// The alert rules judged on the `unmatched` flow: `alerting.default_alerts` while no
    /// flows are configured, else none (once flows exist, their own rules say what matters).
    pub fn unmatched_alerts(&self) -> &[AlertRule] {
        match self.flows.is_empty() {
            true => &self.alerting.default_alerts,
            false => &[],
        }
    }

    /// Every latency threshold of alert rules and SLOs, sorted and deduplicated, so the
    /// histogram can have a boundary at each and Prometheus rules can test them exactly.
    pub fn latency_thresholds(&self) -> Vec<Duration> {
        let rules = self
            .flows
            .iter()
            .flat_map(|f| f.alerts.iter())
            .chain(self.unmatched_alerts())
            .filter_map(|a| a.when.latency_threshold());
        let slos = self
            .flows
            .iter()
            .filter_map(|f| f.slo.and_then(|s| s.latency));
        let mut all: Vec<Duration> = rules.chain(slos).collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Histogram boundaries in seconds: `telemetry.metrics.buckets` plus every latency
    /// threshold, sorted and deduplicated.
    pub fn histogram_buckets(&self) -> Vec<f64> {
        let thresholds = self
            .latency_thresholds()
            .into_iter()
            .map(|d| d.as_secs_f64());
        let mut all: Vec<f64> = self
            .telemetry
            .metrics
            .buckets
            .iter()
            .copied()
            .chain(thresholds)
            .collect();
        all.sort_by(f64::total_cmp);
        all.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
        all
    }
}
