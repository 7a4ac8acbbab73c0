// Redline dashboard: polls the admin JSON API every 2 s and renders alerts, flows, 15-minute charts and unmatched routes.
'use strict';

// Collected before anything else runs, so tests (and curious users) can read window.__redlineErrors.
const pageErrors = [];
window.__redlineErrors = pageErrors;
window.addEventListener('error', (e) => {
  const target = e.target && e.target !== window ? (e.target.src || e.target.href || e.target.tagName) : '';
  pageErrors.push(String(e.message || 'failed to load ' + target));
}, true);
window.addEventListener('unhandledrejection', (e) => {
  pageErrors.push('unhandled rejection: ' + String(e.reason && e.reason.message ? e.reason.message : e.reason));
});
document.addEventListener('securitypolicyviolation', (e) => {
  pageErrors.push('blocked by CSP: ' + e.blockedURI + ' (' + e.violatedDirective + ')');
});
const consoleError = console.error.bind(console);
console.error = (...args) => {
  pageErrors.push(args.map(String).join(' '));
  consoleError(...args);
};

const POLL_MS = 2000;
// /api/config changes only on reload; every 15 rounds (30 s) is fresh enough.
const CONFIG_EVERY = 15;
const ROUTES_SHOWN = 20;
const SVG_NS = 'http://www.w3.org/2000/svg';

const state = {
  token: readToken(),
  alertsApi: 'unknown',
  config: null,
  round: 0,
  scrolledTo: '',
};

const $ = (id) => document.getElementById(id);

/** Thrown when Redline cannot be reached, as opposed to a bug in this page. */
class Offline extends Error {}

function readToken() {
  try {
    return sessionStorage.getItem('redline.token') || '';
  } catch (_) {
    return '';
  }
}

function saveToken(token) {
  state.token = token;
  try {
    sessionStorage.setItem('redline.token', token);
  } catch (_) {
    // Storage disabled: the token lives only as long as the page.
  }
}

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') el.textContent = String(v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k === 'className' ? 'class' : k, v === true ? '' : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

async function api(path, options) {
  const headers = Object.assign({}, (options && options.headers) || {});
  if (state.token) headers.Authorization = 'Bearer ' + state.token;
  let resp;
  try {
    resp = await fetch(path, Object.assign({ cache: 'no-store' }, options || {}, { headers }));
  } catch (_) {
    throw new Offline(path);
  }
  const text = await resp.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch (_) {
    body = null;
  }
  return { status: resp.status, ok: resp.ok, body };
}

// ---- formatting: every number carries its unit ----

function fmtRps(x) {
  if (x === null || x === undefined) return '–';
  if (x === 0) return '0 req/s';
  const digits = x >= 100 ? 0 : x >= 10 ? 1 : x >= 0.1 ? 2 : 3;
  return x.toFixed(digits) + ' req/s';
}

function fmtPct(rate) {
  if (rate === null || rate === undefined) return '–';
  const pct = rate * 100;
  if (pct === 0) return '0 %';
  const digits = pct < 1 ? 2 : 1;
  return pct.toFixed(digits) + ' %';
}

function fmtMs(ms) {
  if (ms === null || ms === undefined) return '–';
  if (ms < 1) return ms.toFixed(2) + ' ms';
  if (ms < 10) return ms.toFixed(1) + ' ms';
  // 999.7 ms would round to "1000 ms": show it as seconds instead.
  if (ms < 999.5) return Math.round(ms) + ' ms';
  if (ms < 60000) return (ms / 1000).toFixed(2) + ' s';
  return (ms / 60000).toFixed(1) + ' min';
}

function fmtAgo(since) {
  const t = parseTime(since);
  if (t === null) return '–';
  const secs = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (secs < 60) return secs + ' s';
  if (secs < 3600) return Math.round(secs / 60) + ' min';
  return (secs / 3600).toFixed(1) + ' h';
}

function parseTime(v) {
  if (v === null || v === undefined || v === '') return null;
  if (typeof v === 'number') return v < 1e12 ? v * 1000 : v;
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : t;
}

function dash(text, why) {
  return text === '–' ? h('span', { title: why, 'aria-label': why, text }) : text;
}

// ---- alert states ----

const RANK = { firing: 3, pending: 2, ok: 1, none: 0 };
const BADGES = {
  firing: ['▲', 'FIRING'],
  pending: ['◆', 'PENDING'],
  ok: ['✓', 'OK'],
  none: ['–', 'NO RULES'],
};

function badge(st) {
  const [icon, word] = BADGES[st] || BADGES.none;
  return h('span', { className: 'badge ' + st, 'data-state': st },
    h('span', { 'aria-hidden': 'true', text: icon + ' ' }), word);
}

// A flow's circuit breaker, when it has one and it is not closed (`circuit` of /api/flows).
const CIRCUITS = { open: ['⊘', 'CIRCUIT OPEN'], half_open: ['◐', 'CIRCUIT HALF-OPEN'] };

function circuitBadge(f) {
  const c = CIRCUITS[f.circuit];
  if (!c) return null;
  return h('span', { className: 'badge circuit ' + f.circuit, 'data-circuit': f.circuit },
    h('span', { 'aria-hidden': 'true', text: c[0] + ' ' }), c[1]);
}

// A flow's adaptive concurrency limit (`concurrency_limit` of /api/flows), when it has one.
function limitBadge(f) {
  if (typeof f.concurrency_limit !== 'number') return null;
  return h('span', {
    className: 'badge limit', 'data-limit': String(f.concurrency_limit),
    title: 'adaptive concurrency limit: more requests in flight get 503 overloaded',
  }, 'LIMIT ' + f.concurrency_limit);
}

function normalizeAlerts(resp) {
  if (!resp || !resp.ok || !resp.body) return [];
  const raw = Array.isArray(resp.body) ? resp.body : (resp.body.alerts || []);
  return raw.map((a) => {
    const labels = a.labels || {};
    const ann = a.annotations || {};
    const st = String(a.state || a.status || '').toLowerCase();
    return {
      alertname: labels.alertname || a.alertname || a.name || '?',
      flow: labels.flow || a.flow || '',
      severity: labels.severity || a.severity || '',
      state: st,
      summary: ann.summary || a.summary || '',
      runbook: ann.runbook_url || '',
      traces: ann.trace_ids || '',
      // Firing alerts count from when they fired, pending ones from when the breach began.
      since: (st === 'firing' && (a.starts_at || a.startsAt)) || a.active_since || a.activeAt || null,
      silenced: Boolean(a.silenced),
    };
  }).filter((a) => a.state === 'firing' || a.state === 'pending');
}

function configFlow(name) {
  const flows = (state.config && state.config.flows) || [];
  return flows.find((f) => f.name === name) || null;
}

function flowState(flow, alerts) {
  let best = 'none';
  const cfg = configFlow(flow.name);
  if ((cfg && ((cfg.alerts || []).length > 0 || cfg.slo)) || (flow.alerts || []).length > 0) best = 'ok';
  const states = alerts.filter((a) => a.flow === flow.name).map((a) => a.state)
    .concat((flow.alerts || []).map((a) => String((a && (a.state || a.status)) || '').toLowerCase()));
  for (const st of states) if ((RANK[st] || 0) > RANK[best]) best = st;
  return best;
}

/** Alert thresholds of a flow, in chart units: {rps, error_rate (%), timeout_rate (%), p95_ms}. */
function thresholds(name) {
  const out = {};
  const cfg = configFlow(name);
  for (const rule of (cfg && cfg.alerts) || []) {
    const m = /^\s*(p95|error_rate|timeout_rate|rps)\s*([<>])\s*([0-9.]+)\s*(ms|s|m|%)?\s*$/.exec(String(rule.when || ''));
    if (!m) continue;
    const n = Number(m[3]);
    const unit = m[4] || '';
    const key = m[1] === 'p95' ? 'p95_ms' : m[1];
    const value = key === 'p95_ms' ? n * ({ ms: 1, s: 1000, m: 60000 }[unit] || 1000) : n;
    if (!(key in out) || value < out[key].value) out[key] = { value, op: m[2] };
  }
  return out;
}

// ---- rendering ----

function proxyUrl() {
  const listen = state.config && state.config.listen;
  if (!listen) return null;
  const i = listen.lastIndexOf(':');
  const host = listen.slice(0, i).replace(/^\[|\]$/g, '');
  const port = listen.slice(i + 1);
  if (port === '0') return null;
  const shown = host === '0.0.0.0' || host === '::' ? location.hostname : host;
  return 'http://' + (shown.includes(':') ? '[' + shown + ']' : shown) + ':' + port;
}

/** How many default alerts apply (they judge all traffic while no flows are configured). */
function defaultAlerts() {
  const alerting = state.config && state.config.alerting;
  return alerting && Array.isArray(alerting.default_alerts) ? alerting.default_alerts.length : 0;
}

function renderNotice(flows) {
  const notice = $('notice');
  const idle = flows.every((f) => !f.windows || !f.windows['5m'] || f.windows['5m'].requests === 0);
  const configured = flows.filter((f) => f.name !== 'unmatched').length;
  const parts = [];
  if (idle) {
    const url = proxyUrl();
    parts.push(h('p', {},
      h('strong', { text: 'No traffic yet: ' }),
      url ? ['send requests to ', h('a', { href: url, text: url }), ' (Redline\'s proxy), e.g. ',
        h('code', { text: 'curl ' + url + '/' }), '.']
        : 'send requests to Redline\'s proxy listener (the address it printed at start).',
      ' This page updates by itself.'));
  }
  if (configured === 0) {
    parts.push(h('p', {}, h('strong', { text: 'No flows configured: ' }),
      'add ', h('code', { text: 'flows:' }), ' to a config file to follow critical routes ',
      '(the Proposed config section below writes one from your traffic).',
      defaultAlerts() ? ' Until then, default alerts watch all traffic.' : ''));
  }
  notice.replaceChildren(...parts);
  notice.hidden = parts.length === 0;
}

function renderAlerts(alerts, absent) {
  const box = $('alerts');
  if (alerts.length === 0) {
    box.replaceChildren(h('p', { className: 'empty', 'data-empty': 'alerts' },
      absent ? 'No alerts (this Redline build has no alert API).' : 'No alerts: every flow is within its thresholds.'));
    return;
  }
  alerts.sort((a, b) => (RANK[b.state] - RANK[a.state]) || a.flow.localeCompare(b.flow));
  const rows = alerts.map((a) => h('tr', { 'data-alertname': a.alertname, 'data-flow': a.flow, 'data-state': a.state },
    h('td', {}, badge(a.state), a.silenced ? h('span', { className: 'badge silenced', text: 'silenced' }) : null),
    h('td', {}, h('strong', { text: a.alertname })),
    h('td', {}, h('a', { href: '#flow=' + encodeURIComponent(a.flow), text: a.flow })),
    h('td', { text: a.severity || '–' }),
    h('td', { className: 'summary', text: a.summary || '–' }),
    h('td', { className: 'num', title: String(a.since || ''), text: fmtAgo(a.since) }),
    h('td', {}, alertLinks(a)),
    h('td', {}, h('button', {
      type: 'button', className: 'silence', text: 'Silence…',
      'aria-label': 'Silence ' + a.alertname + ' on ' + a.flow,
      onclick: () => openSilence(a),
    }))));
  box.replaceChildren(table(['State', 'Alert', 'Flow', 'Severity', 'Summary', 'For', 'Links', ''], rows, [5]));
}

function alertLinks(a) {
  const links = [];
  if (/^https?:\/\//.test(a.runbook)) {
    links.push(h('a', { href: a.runbook, target: '_blank', rel: 'noopener noreferrer', text: 'Runbook' }));
  }
  if (a.traces) {
    const ids = String(a.traces).split(',').filter(Boolean);
    links.push(h('span', { className: 'nowrap', title: ids.join('\n') },
      'traces: ', ids.flatMap((t, i) => (i ? [' ', traceRef(t)] : [traceRef(t)]))));
  }
  return links.length ? links.flatMap((l, i) => (i ? [' · ', l] : [l])) : '–';
}

/** A trace id, linked to the trace backend when telemetry.trace_url_template is set. */
function traceRef(id) {
  const template = state.config && state.config.telemetry && state.config.telemetry.trace_url_template;
  const short = h('code', { text: id.slice(0, 8) });
  // Only well-formed ids go into a URL; the template was checked by Redline (http(s), {trace_id}).
  if (!template || !/^https?:\/\//.test(template) || !/^[0-9a-f]{32}$/i.test(id)) return short;
  const href = template.split('{trace_id}').join(encodeURIComponent(id));
  return h('a', {
    href, target: '_blank', rel: 'noopener noreferrer', className: 'trace',
    'data-trace-id': id, title: 'Open trace ' + id, 'aria-label': 'Open trace ' + id,
  }, short);
}

function table(headers, rows, numeric) {
  return h('table', {},
    h('thead', {}, h('tr', {}, headers.map((t, i) => h('th', {
      scope: 'col', className: numeric.includes(i) ? 'num' : null, text: t,
    })))),
    h('tbody', {}, rows));
}

function renderFlows(flows, alerts) {
  const box = $('flows');
  const rows = flows.map((f) => {
    const w = (f.windows && f.windows['1m']) || {};
    const st = f.name === 'unmatched' ? 'none' : flowState(f, alerts);
    const noReq = 'no requests in the last minute';
    return h('tr', { 'data-flow': f.name, 'data-state': st, className: isTarget(f.name) ? 'highlight' : null },
      h('th', { scope: 'row' }, h('a', { href: '#flow=' + encodeURIComponent(f.name), text: f.name })),
      h('td', { text: f.owner || (f.name === 'unmatched' ? 'routes no flow matches' : '–') }),
      h('td', {}, f.name === 'unmatched' ? '–' : badge(st), circuitBadge(f), limitBadge(f)),
      h('td', { className: 'num', 'data-col': 'rps' }, fmtRps(w.rps)),
      h('td', { className: 'num', 'data-col': 'error_rate' }, dash(fmtPct(w.error_rate), noReq)),
      h('td', { className: 'num', 'data-col': 'timeout_rate' }, dash(fmtPct(w.timeout_rate), noReq)),
      h('td', { className: 'num' }, dash(fmtMs(w.p50_ms), noReq)),
      h('td', { className: 'num' }, dash(fmtMs(w.p95_ms), noReq)),
      h('td', { className: 'num' }, dash(fmtMs(w.p99_ms), noReq)),
      h('td', { className: 'num', text: String(f.active_requests || 0) }));
  });
  box.replaceChildren(table(
    ['Flow', 'Owner', 'Alerts', 'Rate', 'Errors', 'Timeouts', 'p50', 'p95', 'p99', 'In flight'],
    rows, [3, 4, 5, 6, 7, 8, 9]));
}

/** No axis shorter than this, so the first seconds are not stretched over the whole width. */
const MIN_SPAN_MS = 60000;

/**
 * Where the time axis starts: the first point with requests, over all flows (so cards
 * compare), or 15 minutes ago once that much data exists (or when there is none).
 */
function axisStart(docs) {
  let first = Infinity;
  let last = 0;
  for (const doc of docs) {
    for (const p of doc.points || []) {
      last = Math.max(last, p.t);
      if (p.requests > 0) first = Math.min(first, p.t);
    }
  }
  return Number.isFinite(first) ? Math.min(first, last - MIN_SPAN_MS) : 0;
}

// The flow's access rule and how many requests it let through or turned away (never a token).
function accessLine(access) {
  if (!access || !access.rule) return null;
  const audit = access.audit ? ' · audited' : '';
  return h('p', { className: 'access', 'data-access': access.rule },
    'Access: ' + access.rule + ' · ' + access.allowed + ' allowed, ' + access.denied + ' denied' + audit);
}

function renderCharts(flows, series, alerts) {
  const docs = flows.map((f, i) => (series[i] && series[i].ok && series[i].body ? series[i].body : { points: [] }));
  const start = axisStart(docs);
  const cards = flows.map((f, i) => {
    const points = (docs[i].points || []).filter((p) => p.t >= start);
    const w = (f.windows && f.windows['1m']) || {};
    const limits = thresholds(f.name);
    const total = points.reduce((n, p) => n + (p.requests || 0), 0);
    return h('article', {
      className: 'card' + (isTarget(f.name) ? ' highlight' : ''), id: 'flow-' + f.name, 'data-flow': f.name,
    },
    h('header', {}, h('h3', { text: f.name }), f.name === 'unmatched' ? null : badge(flowState(f, alerts)), circuitBadge(f), limitBadge(f)),
    h('p', { className: 'owner' }, f.owner ? 'Owner: ' + f.owner : (f.name === 'unmatched' ? 'Requests no flow matches' : 'No owner set'),
      total === 0 ? ' · no requests in the last 15 min' : ''),
    accessLine(f.access),
    h('div', { className: 'charts' },
      figure('Requests/s', fmtRps(w.rps), chart('rps', points, limits.rps, fmtRps)),
      figure('Errors', fmtPct(w.error_rate), chart('error_rate', points, limits.error_rate, (v) => fmtPct(v / 100))),
      // Only where a timeout alert makes the rate worth a chart of its own.
      limits.timeout_rate ? figure('Timeouts', fmtPct(w.timeout_rate),
        chart('timeout_rate', points, limits.timeout_rate, (v) => fmtPct(v / 100))) : null,
      figure('p95 latency', fmtMs(w.p95_ms), chart('p95_ms', points, limits.p95_ms, fmtMs))));
  });
  $('charts').replaceChildren(...cards);
  const shown = docs.length && docs[0].points && docs[0].points.filter((p) => p.t >= start);
  const span = shown && shown.length > 1 ? shown[shown.length - 1].t - shown[0].t : 0;
  $('charts-h').querySelector('.span').textContent = span > 0 && span < 14 * 60000
    ? '· 5 s points over the last ' + fmtSpan(span / 1000) + ', since the first request (15 minutes once there is that much)'
    : '· 5 s points, updated every 2 s';
}

/** "45 s", "2 min", "1.5 min"; within a 5 s point of a whole minute counts as whole (895 s: 15 min). */
function fmtSpan(secs) {
  if (secs < 60) return Math.round(secs) + ' s';
  const min = secs / 60;
  return (Math.abs(secs - Math.round(min) * 60) <= 5 ? Math.round(min) : min.toFixed(1)) + ' min';
}

function figure(title, latest, svg) {
  return h('figure', {},
    h('figcaption', {}, h('span', { text: title }), h('span', { className: 'latest', title: 'last minute', text: latest })),
    svg);
}

const VB = { w: 320, h: 112, top: 16, bottom: 94, left: 2, right: 318 };

function pointValue(kind, p) {
  if (kind === 'rps') return typeof p.rps === 'number' ? p.rps : 0;
  if (!p.requests) return null;
  if (kind === 'error_rate') return (p.error_rate || 0) * 100;
  if (kind === 'timeout_rate') return (p.timeout_rate || 0) * 100;
  return typeof p.p95_ms === 'number' ? p.p95_ms : null;
}

function niceCeil(v) {
  if (!(v > 0)) return 1;
  const exp = Math.pow(10, Math.floor(Math.log10(v)));
  const f = v / exp;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * exp;
}

/** A hand-written SVG line chart: gaps (no requests) break the line instead of drawing zeros. */
function chart(kind, points, limit, fmt) {
  const values = points.map((p) => pointValue(kind, p));
  const present = values.filter((v) => v !== null);
  const peak = present.length ? Math.max(...present) : 0;
  const rate = kind === 'error_rate' || kind === 'timeout_rate';
  const top = niceCeil(Math.max(peak, limit ? limit.value * 1.15 : 0) || (rate ? 1 : 0));
  const t0 = points.length ? points[0].t : 0;
  const t1 = points.length ? points[points.length - 1].t : 0;
  // By time, not by index: the axis may start at the first request rather than 15 min ago.
  const x = (t) => VB.left + (t1 > t0 ? ((t - t0) * (VB.right - VB.left)) / (t1 - t0) : 0);
  const y = (v) => VB.bottom - (Math.min(v, top) / top) * (VB.bottom - VB.top);
  const segments = [];
  let current = null;
  values.forEach((v, i) => {
    if (v === null) { current = null; return; }
    if (!current) { current = []; segments.push(current); }
    current.push([x(points[i].t), y(v)]);
  });
  const xy = ([a, b]) => a.toFixed(1) + ' ' + b.toFixed(1);
  const line = segments.map((seg) => 'M' + seg.map(xy).join('L')).join('');
  const area = segments.filter((seg) => seg.length > 1).map((seg) =>
    'M' + seg[0][0].toFixed(1) + ' ' + VB.bottom + 'L' + seg.map(xy).join('L') + 'L' + seg[seg.length - 1][0].toFixed(1) + ' ' + VB.bottom + 'Z').join('');
  const latest = present.length ? fmt(present[present.length - 1]) : 'no data';
  const spanS = Math.round((t1 - t0) / 1000);
  const label = CHART_NAMES[kind] + ' over the last ' + fmtSpan(spanS) + ': peak ' + (present.length ? fmt(peak) : 'none') +
    ', latest ' + latest + (limit ? ', alert threshold ' + fmt(limit.value) : '');
  const grid = [VB.top, (VB.top + VB.bottom) / 2, VB.bottom].map((gy) =>
    s('line', { className: 'grid', x1: VB.left, x2: VB.right, y1: gy, y2: gy }));
  return s('svg', {
    className: 'chart', viewBox: '0 0 ' + VB.w + ' ' + VB.h, role: 'img', 'aria-label': label,
    'data-series': kind, 'data-points': present.length, 'data-start': t0, 'data-span-s': spanS,
  },
  s('title', { text: label }),
  grid,
  s('text', { className: 'axis', x: VB.left, y: VB.top - 4, text: fmt(top) }),
  timeTicks(spanS),
  area ? s('path', { className: 'area', d: area }) : null,
  line ? s('path', { className: 'line', d: line }) : null,
  limit ? thresholdMarks(limit, y(limit.value), fmt) : []);
}

const CHART_NAMES = {
  rps: 'Requests per second', error_rate: 'Error percentage',
  timeout_rate: 'Timeout percentage', p95_ms: '95th percentile latency',
};

/**
 * The threshold: a dashed line across the plot, and its label in the top margin with a
 * dashed swatch (like a legend), where it never covers the data whatever the line's height.
 */
function thresholdMarks(limit, ly, fmt) {
  const text = 'alert ' + limit.op + ' ' + fmt(limit.value);
  // About 5 units per character of the 10px label, then a gap.
  const swatchEnd = VB.right - text.length * 5 - 4;
  return [
    s('line', { className: 'threshold', x1: VB.left, x2: VB.right, y1: ly, y2: ly, 'data-value': limit.value }),
    s('line', { className: 'threshold', x1: swatchEnd - 14, x2: swatchEnd, y1: VB.top - 7, y2: VB.top - 7 }),
    s('text', { className: 'threshold-label', x: VB.right, y: VB.top - 4, 'text-anchor': 'end', text }),
  ];
}

/** Time labels under the plot: the start, "now", and round steps between them. */
function timeTicks(spanS) {
  const step = [15, 30, 60, 120, 300, 600].find((st) => spanS / st <= 3.2) || 600;
  const at = (ago) => VB.right - (spanS > 0 ? (ago * (VB.right - VB.left)) / spanS : 0);
  const ticks = [['−' + fmtSpan(spanS), VB.left, 'start'], ['now', VB.right, 'end']];
  for (let ago = step; ago < spanS; ago += step) {
    // Keep clear of the edge labels.
    if (ago > spanS * 0.2 && ago < spanS * 0.8) ticks.push(['−' + fmtSpan(ago), at(ago), 'middle']);
  }
  return ticks.map(([t, tx, anchor]) => s('text', { className: 'axis', x: tx, y: VB.h - 4, 'text-anchor': anchor, text: t }));
}

function renderRoutes(resp) {
  const box = $('routes');
  if (!resp.ok || !resp.body) {
    box.replaceChildren(h('p', { className: 'empty', text: 'Route templates are not available (GET /api/routes answered ' + resp.status + ').' }));
    return;
  }
  const templates = (resp.body.templates || []).slice()
    .sort((a, b) => (b.count - a.count) || String(a.route).localeCompare(String(b.route)))
    .slice(0, ROUTES_SHOWN);
  if (templates.length === 0) {
    box.replaceChildren(h('p', { className: 'empty', 'data-empty': 'routes' },
      'No unmatched traffic yet: requests that match no flow show up here as route templates such as ',
      h('code', { text: '/users/{id}' }), '.'));
    return;
  }
  const rows = templates.map((t) => h('tr', { 'data-route': t.route },
    h('td', {}, h('code', { text: t.route })),
    h('td', { className: 'num', text: t.count + ' req' }),
    h('td', { className: 'examples' }, (t.examples || []).map((e) => h('code', { text: e })))));
  box.replaceChildren(table(['Route template', 'Requests', 'Example paths'], rows, [1]));
}

// ---- the #flow=NAME deep link (alert notifications link here) ----

function targetFlow() {
  const m = /^#flow=(.+)$/.exec(location.hash);
  if (!m) return '';
  try {
    return decodeURIComponent(m[1]);
  } catch (_) {
    return '';
  }
}

function isTarget(name) {
  return targetFlow() === name;
}

function scrollToTarget() {
  const name = targetFlow();
  if (!name || state.scrolledTo === name) return;
  const card = document.getElementById('flow-' + name);
  if (card) {
    card.scrollIntoView({ block: 'start' });
    state.scrolledTo = name;
  }
}

window.addEventListener('hashchange', () => {
  state.scrolledTo = '';
  refreshSoon();
});

// ---- silences ----

let silenceTarget = null;

function openSilence(alert) {
  silenceTarget = alert;
  $('silence-what').textContent = alert.alertname + ' on flow ' + alert.flow;
  $('silence-token').value = state.token;
  setResult('', '');
  $('silence-submit').disabled = false;
  $('silence-dialog').showModal();
}

function setResult(text, kind) {
  const el = $('silence-result');
  el.textContent = text;
  el.className = 'result' + (kind ? ' ' + kind : '');
}

async function submitSilence(event) {
  event.preventDefault();
  if (!silenceTarget) return;
  const token = $('silence-token').value.trim();
  if (token) saveToken(token);
  const body = {
    flow: silenceTarget.flow,
    alertname: silenceTarget.alertname,
    duration: $('silence-duration').value,
    comment: $('silence-comment').value.trim() || 'silenced from the dashboard',
  };
  $('silence-submit').disabled = true;
  try {
    const r = await api('/api/silences', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (r.status === 200 || r.status === 201) {
      const until = r.body && (r.body.ends_at || (r.body.silence && r.body.silence.ends_at));
      setResult('Silenced' + (until ? ' until ' + new Date(parseTime(until)).toLocaleString() : '') + '.', 'good');
      setTimeout(() => $('silence-dialog').close(), 1200);
      refreshSoon();
      return;
    }
    const why = (r.body && (r.body.error || r.body.message)) || 'HTTP ' + r.status;
    const hint = r.status === 401 ? ' Enter the admin token.' : r.status === 404 ? ' This Redline build has no silence API.' : '';
    setResult('Not silenced: ' + why + '.' + hint, 'bad');
  } catch (err) {
    if (!(err instanceof Offline)) throw err;
    setResult('Not silenced: Redline cannot be reached.', 'bad');
  }
  $('silence-submit').disabled = false;
}

$('silence-form').addEventListener('submit', (e) => {
  submitSilence(e).catch((err) => console.error('silence failed', err));
});
$('silence-cancel').addEventListener('click', () => $('silence-dialog').close());

// ---- proposed config (GET /api/proposal, what `redline init` writes) ----

function proposalSummary(body) {
  const share = body.requests ? Math.floor(body.coverage * 1000) / 10 : 0;
  const flows = (body.flows || []).length;
  return flows + ' flow' + (flows === 1 ? '' : 's') + ' covering ' + share + '% of ' +
    body.requests + ' requests seen.';
}

async function loadProposal() {
  const result = $('proposal-result');
  result.textContent = 'Learning…';
  try {
    const r = await api('/api/proposal');
    if (!r.ok || !r.body || typeof r.body.yaml !== 'string') {
      const why = (r.body && r.body.error) || 'HTTP ' + r.status;
      result.textContent = 'No proposal: ' + why + '.';
      return;
    }
    $('proposal').textContent = r.body.yaml;
    $('proposal').hidden = false;
    $('proposal-copy').hidden = false;
    $('proposal-load').textContent = 'Propose again';
    result.textContent = proposalSummary(r.body);
  } catch (err) {
    if (!(err instanceof Offline)) throw err;
    result.textContent = 'No proposal: Redline cannot be reached.';
  }
}

async function copyProposal() {
  const text = $('proposal').textContent;
  try {
    await navigator.clipboard.writeText(text);
    $('proposal-result').textContent = 'Copied to the clipboard.';
  } catch (_) {
    // No clipboard access (an insecure origin, or denied): select it for a manual copy.
    const range = document.createRange();
    range.selectNodeContents($('proposal'));
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    $('proposal-result').textContent = 'Selected: press Ctrl+C (⌘C) to copy.';
  }
}

$('proposal-load').addEventListener('click', () => {
  loadProposal().catch((err) => console.error('proposal failed', err));
});
$('proposal-copy').addEventListener('click', () => {
  copyProposal().catch((err) => console.error('copy failed', err));
});

// ---- polling ----

function setStatus(kind, text) {
  const el = $('status');
  el.className = 'status ' + kind;
  el.textContent = text;
}

async function fetchAlerts() {
  // The 404 of a build without the alert API is logged by the browser once, not every 2 s.
  if (state.alertsApi === 'absent') return { absent: true, ok: false };
  const r = await api('/api/alerts');
  if (r.status === 404) {
    state.alertsApi = 'absent';
    return { absent: true, ok: false };
  }
  state.alertsApi = 'present';
  return r;
}

function renderAuthNeeded(resp) {
  const input = h('input', { type: 'password', id: 'read-token', autocomplete: 'off', 'aria-label': 'Admin token' });
  const form = h('form', {
    className: 'token-form',
    onsubmit: (e) => {
      e.preventDefault();
      saveToken(input.value.trim());
      refreshSoon();
    },
  }, h('p', {}, h('strong', { text: 'This admin API needs a token' }),
    ' (' + ((resp.body && resp.body.error) || 'HTTP ' + resp.status) + '). ',
    'Enter REDLINE_ADMIN_TOKEN to view the dashboard: '), input, ' ', h('button', { type: 'submit', text: 'Use token' }));
  $('notice').replaceChildren(form);
  $('notice').hidden = false;
}

async function poll() {
  const needConfig = state.config === null || state.round % CONFIG_EVERY === 0;
  const [flows, routes, alertsResp, config] = await Promise.all([
    api('/api/flows'), api('/api/routes'), fetchAlerts(), needConfig ? api('/api/config') : null,
  ]);
  if (flows.status === 401 || flows.status === 403) {
    renderAuthNeeded(flows);
    setStatus('down', 'Waiting for the admin token');
    return;
  }
  if (!flows.ok || !flows.body) throw new Offline('/api/flows answered ' + flows.status);
  if (config && config.ok && config.body) {
    state.config = config.body.config || null;
    $('service').textContent = (state.config && state.config.service) || '';
  }
  const list = flows.body.flows || [];
  const series = await Promise.all(list.map((f) => api('/api/flows/' + encodeURIComponent(f.name) + '/series')));
  const alerts = normalizeAlerts(alertsResp);
  renderNotice(list);
  renderAlerts(alerts, Boolean(alertsResp.absent));
  renderFlows(list, alerts);
  renderCharts(list, series, alerts);
  renderRoutes(routes);
  scrollToTarget();
  setStatus('live', 'Live · updated ' + new Date().toLocaleTimeString());
}

let timer = null;
let running = false;
let again = false;

/** Poll now rather than in 2 s (after a silence, or a new #flow= link), without a second loop. */
function refreshSoon() {
  if (running) {
    again = true;
    return;
  }
  clearTimeout(timer);
  timer = setTimeout(loop, 50);
}

async function loop() {
  running = true;
  try {
    await poll();
  } catch (err) {
    if (err instanceof Offline) {
      setStatus('down', 'Connection lost: retrying every 2 s. Is Redline still running?');
    } else {
      console.error('dashboard render failed:', err);
      setStatus('down', 'Dashboard error: ' + (err && err.message));
    }
  }
  state.round += 1;
  document.body.dataset.rounds = String(state.round);
  running = false;
  timer = setTimeout(loop, again ? 50 : POLL_MS);
  again = false;
}

loop();
