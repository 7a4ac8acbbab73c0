//! Human (`redline check`) and JSON (`GET /api/config`) views of a config, secrets redacted.

use serde_json::{Map, Value, json};

use super::flow::pattern_text;
use super::units::{format_duration as dur, format_percent};
use super::{AlertRule, Config, FlowConfig, OtlpConfig, ReceiverConfig, ReceiverKind, Slo};

/// Replaces every secret value in the JSON view.
pub const REDACTED: &str = "REDACTED";

impl Config {
    /// Human summary for `redline check`: listeners, upstream, every flow with its patterns,
    /// alerts and SLO, receivers (name and type only) and route settings.
    pub fn describe(&self) -> String {
        let mut lines = vec![
            format!("service:   {}", self.service),
            format!("listen:    {}", self.listen),
            format!("upstream:  {}", self.describe_upstream()),
            format!("admin:     {}", self.describe_admin()),
            format!(
                "routes:    templating {}, at most {} templates",
                templating(self.routes.templating),
                self.routes.max_templates
            ),
            format!(
                "alerting:  evaluated every {}, repeated every {} while firing",
                dur(self.alerting.eval_interval),
                dur(self.alerting.repeat_interval)
            ),
        ];
        self.describe_flows(&mut lines);
        self.describe_receivers(&mut lines);
        lines.push(String::new());
        lines.join("\n")
    }

    fn describe_upstream(&self) -> String {
        match &self.upstream {
            Some(u) => format!("{u} (timeout {})", dur(self.timeout)),
            None => "none (set `upstream` or pass --upstream to run)".into(),
        }
    }

    fn describe_admin(&self) -> String {
        let token = match &self.admin.token_file {
            Some(path) => format!("token from {}", path.display()),
            None => "token from REDLINE_ADMIN_TOKEN if set".into(),
        };
        let reads = if self.admin.protect_reads {
            ", reads protected"
        } else {
            ""
        };
        format!("{}, {token}{reads}", self.admin.listen)
    }

    fn describe_flows(&self, lines: &mut Vec<String>) {
        if self.flows.is_empty() {
            lines.push("flows:     none (all traffic is \"unmatched\")".into());
            for rule in self.unmatched_alerts() {
                lines.push(format!("  default alert {}", describe_rule(rule)));
            }
            return;
        }
        lines.push(format!("flows ({}):", self.flows.len()));
        for (i, flow) in self.flows.iter().enumerate() {
            describe_flow(flow, self.flow_timeout(i), lines);
        }
    }

    fn describe_receivers(&self, lines: &mut Vec<String>) {
        let receivers = &self.alerting.receivers;
        if receivers.is_empty() {
            lines
                .push("receivers: none (alerts show on the dashboard and /api/alerts only)".into());
            return;
        }
        lines.push(format!("receivers ({}):", receivers.len()));
        for r in receivers {
            lines.push(format!("  {} ({})", r.name, r.kind));
        }
    }

    /// The effective config as JSON for `GET /api/config`, in the YAML's shape, with every
    /// secret replaced by `REDACTED`: URL credentials and query values, Slack webhook paths
    /// and OTLP header values. Names of env variables and files are shown.
    pub fn redacted_json(&self) -> Value {
        json!({
            "service": self.service,
            "listen": self.listen.to_string(),
            "upstream": self.upstream.as_ref().map(ToString::to_string),
            "timeout": dur(self.timeout),
            "admin": {
                "listen": self.admin.listen.to_string(),
                "token_file": self.admin.token_file,
                "protect_reads": self.admin.protect_reads,
            },
            "flows": self.flows.iter().enumerate().map(|(i, f)| flow_json(f, self.flow_timeout(i))).collect::<Vec<_>>(),
            "routes": {
                "templating": templating(self.routes.templating),
                "max_templates": self.routes.max_templates,
            },
            "alerting": {
                "eval_interval": dur(self.alerting.eval_interval),
                "repeat_interval": dur(self.alerting.repeat_interval),
                "receivers": self.alerting.receivers.iter().map(receiver_json).collect::<Vec<_>>(),
                "external_url": self.alerting.external_url.as_deref().map(|u| redact_url(u, false)),
                "default_alerts": self.alerting.default_alerts.iter().map(rule_json).collect::<Vec<_>>(),
            },
            "telemetry": self.telemetry_json(),
            "redact": {
                "headers": self.redact.headers,
                "query_params": self.redact.query_params,
            },
            "data_dir": self.data_dir,
            "limits": {
                "header_read_timeout": dur(self.limits.header_read_timeout),
                "body_read_timeout": dur(self.limits.body_read_timeout),
                "max_header_bytes": self.limits.max_header_bytes,
                "max_concurrent_requests": self.limits.max_concurrent_requests,
                "shutdown_grace": dur(self.limits.shutdown_grace),
            },
            "upstream_connections": {
                "max_connecting": self.upstream_connections.max_connecting.get(),
                "max": self.upstream_connections.max,
                "queue": self.upstream_connections.queue,
                "queue_timeout": dur(self.upstream_connections.queue_timeout),
                "connect_timeout": dur(self.upstream_connections.connect_timeout),
            },
            "baseline": { "record": {
                "enabled": self.baseline.record.enabled,
                "per_flow": self.baseline.record.per_flow,
                "headers": self.baseline.record.headers,
            } },
            "retries": retries_json(&self.retries),
            "concurrency": concurrency_json(&self.concurrency),
            "source": self.source,
        })
    }

    fn telemetry_json(&self) -> Value {
        let t = &self.telemetry;
        json!({
            "otlp": t.otlp.as_ref().map(otlp_json),
            "traces": {
                "sample_ratio": t.traces.sample_ratio,
                "keep_slower_than": t.traces.keep_slower_than.map(dur),
            },
            "metrics": {
                "interval": dur(t.metrics.interval),
                "buckets": t.metrics.buckets,
            },
            "access_log": t.access_log.as_str(),
            "trace_url_template": t.trace_url_template,
        })
    }
}

fn templating(on: bool) -> &'static str {
    if on { "auto" } else { "off" }
}

fn describe_flow(flow: &FlowConfig, timeout: std::time::Duration, lines: &mut Vec<String>) {
    let owner = flow.owner.as_deref().unwrap_or("no owner");
    lines.push(format!(
        "  {} ({owner}, timeout {})",
        flow.name,
        dur(timeout)
    ));
    let patterns: Vec<String> = flow.patterns.iter().map(pattern_text).collect();
    lines.push(format!("    match: {}", patterns.join(", ")));
    if let Some(runbook) = &flow.runbook {
        lines.push(format!("    runbook: {runbook}"));
    }
    if let Some(access) = &flow.access {
        lines.push(format!("    access: {access}"));
    }
    if flow.audit {
        lines.push("    audit: every request recorded".into());
    }
    for rule in &flow.alerts {
        lines.push(format!("    alert {}", describe_rule(rule)));
    }
    if let Some(slo) = &flow.slo {
        lines.push(format!("    slo: {}", describe_slo(slo)));
    }
}

fn describe_rule(r: &AlertRule) -> String {
    format!(
        "{}: {} over {} for {}, min {} requests, keep firing {}, severity {}",
        r.name,
        r.when,
        dur(r.over),
        dur(r.for_),
        r.min_requests,
        dur(r.keep_firing_for),
        r.severity.as_str()
    )
}

fn describe_slo(slo: &Slo) -> String {
    let latency = slo
        .latency
        .map(|l| format!(", bad = error or slower than {}", dur(l)))
        .unwrap_or_else(|| ", bad = error".into());
    format!(
        "{} good{latency}, burn-rate alerts FlowSLOBurnRate",
        format_percent(slo.objective)
    )
}

fn retries_json(r: &super::RetryConfig) -> Value {
    json!({
        "attempts": r.attempts,
        "per_try_timeout": r.per_try_timeout.map(dur),
        "retry_on": r.retry_on,
        "backoff_base": dur(r.backoff_base),
        "backoff_max": dur(r.backoff_max),
        "budget": {
            "ratio": format_percent(r.budget.ratio),
            "min_per_second": r.budget.min_per_second,
        },
    })
}

fn concurrency_json(c: &super::ConcurrencyConfig) -> Value {
    json!({
        "adaptive": c.adaptive.map(|a| json!({
            "min": a.min,
            "max": a.max,
            "initial": a.initial,
            "window": dur(a.window),
            "baseline_interval": dur(a.baseline_interval),
        })),
    })
}

fn flow_json(f: &FlowConfig, timeout: std::time::Duration) -> Value {
    json!({
        "name": f.name,
        "match": f.patterns.iter().map(pattern_text).collect::<Vec<_>>(),
        "owner": f.owner,
        "runbook": f.runbook,
        "timeout": dur(timeout),
        "max_concurrent_requests": f.max_concurrent_requests,
        "retries": f.retries.as_ref().map(retries_json),
        "concurrency": f.concurrency.as_ref().map(concurrency_json),
        "circuit_breaker": f.circuit_breaker.map(|b| json!({
            "consecutive_failures": b.consecutive_failures,
            "error_rate": format_percent(b.error_rate),
            "window": dur(b.window),
            "min_requests": b.min_requests,
            "open_for": dur(b.open_for),
            "max_open_for": dur(b.max_open_for),
        })),
        "fallback": f.fallback.as_ref().map(|b| json!({
            "stale_if_error": b.stale_if_error.map(|s| json!({
                "max_age": dur(s.max_age),
                "max_body": s.max_body,
                "max_size": s.max_size,
                "allow_credentials": s.allow_credentials,
            })),
            "static": b.static_response.as_ref().map(|s| json!({
                "status": s.status,
                "body_bytes": s.body_file.as_ref().map(|b| b.len()),
                "content_type": s.content_type,
                "retry_after": s.retry_after.map(dur),
                "headers": s.headers,
            })),
        })),
        "fault": f.fault.as_ref().map(|x| json!({
            "delay": x.delay.map(dur),
            "abort": x.abort,
            "percent": format_percent(x.percent),
            "header": x.header,
        })),
        "alerts": f.alerts.iter().map(rule_json).collect::<Vec<_>>(),
        "slo": f.slo.map(|s| json!({
            "objective": format_percent(s.objective),
            "latency": s.latency.map(dur),
        })),
    })
}

fn rule_json(r: &AlertRule) -> Value {
    json!({
        "name": r.name,
        "when": r.when.to_string(),
        "over": dur(r.over),
        "for": dur(r.for_),
        "min_requests": r.min_requests,
        "keep_firing_for": dur(r.keep_firing_for),
        "severity": r.severity.as_str(),
    })
}

fn receiver_json(r: &ReceiverConfig) -> Value {
    let hide_path = r.kind == ReceiverKind::Slack;
    let mut out = Map::new();
    out.insert("name".into(), json!(r.name));
    out.insert("type".into(), json!(r.kind.as_str()));
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(v) = value {
            out.insert(key.into(), v);
        }
    };
    put(
        "url",
        r.url.as_deref().map(|u| json!(redact_url(u, hide_path))),
    );
    let urls: Vec<String> = r.urls.iter().map(|u| redact_url(u, hide_path)).collect();
    put("urls", (!urls.is_empty()).then(|| json!(urls)));
    put("url_env", r.url_env.as_ref().map(|v| json!(v)));
    put("secret_env", r.secret_env.as_ref().map(|v| json!(v)));
    put("secret_file", r.secret_file.as_ref().map(|v| json!(v)));
    put(
        "routing_key_env",
        r.routing_key_env.as_ref().map(|v| json!(v)),
    );
    put(
        "routing_key_file",
        r.routing_key_file.as_ref().map(|v| json!(v)),
    );
    Value::Object(out)
}

fn otlp_json(o: &OtlpConfig) -> Value {
    let headers: Map<String, Value> = o
        .headers
        .keys()
        .map(|k| (k.clone(), json!(REDACTED)))
        .collect();
    json!({
        "endpoint": redact_url(&o.endpoint, false),
        "protocol": o.protocol.as_str(),
        "headers": headers,
    })
}

/// `scheme://host[:port]/path` with userinfo and every query value replaced by `REDACTED`;
/// the path too when it is itself the secret (Slack). Unparseable input is hidden whole.
pub fn redact_url(url: &str, hide_path: bool) -> String {
    let Ok(uri) = url.trim().parse::<http::Uri>() else {
        return REDACTED.into();
    };
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return REDACTED.into();
    };
    let userinfo = if authority.as_str().contains('@') {
        "REDACTED@"
    } else {
        ""
    };
    let port = authority
        .port()
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    let path = if hide_path && !matches!(uri.path(), "" | "/") {
        "/REDACTED"
    } else {
        uri.path()
    };
    let query = uri.query().map(redact_query).unwrap_or_default();
    format!(
        "{scheme}://{userinfo}{}{port}{path}{query}",
        authority.host()
    )
}

fn redact_query(query: &str) -> String {
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) => format!("{key}={REDACTED}"),
            None => REDACTED.into(),
        })
        .collect();
    format!("?{}", pairs.join("&"))
}
