// The local cloud's dashboard: polls the JSON under ./api/ every 2 s and draws
// each panel. Everything shown is built with DOM calls and textContent (task logs
// and names are never parsed as HTML). A panel whose request fails, or whose
// answer carries an `error`, says so and the others go on.
'use strict';

const POLL_MS = 2000;
const SVG = 'http://www.w3.org/2000/svg';
const base = location.pathname.endsWith('/') ? location.pathname : location.pathname + '/';
// Healthy tasks per unit, sampled by this page at each poll (a chart that needs
// no metrics): unit -> [[t_ms, n], ...].
const sampled = new Map();
const SAMPLES = 180;
let lastEvent = 0;
let lastStatus = null;
const recentEvents = []; // the supervisor's events, newest last (deployment steps)

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}
function badge(text, kind) { return el('span', 'badge ' + (kind || ''), text); }
function body(id) { return document.querySelector('#' + id + ' .body'); }
function fill(id, ...children) {
  const b = body(id);
  b.replaceChildren(...children);
}
function showError(id, msg) {
  fill(id, el('p', 'error', msg));
}
function table(headers, rows) {
  const t = el('table');
  const h = el('tr');
  for (const x of headers) h.append(el('th', null, x));
  t.append(h);
  for (const r of rows) {
    const tr = el('tr');
    for (const c of r) {
      if (c instanceof Node) { const td = el('td'); td.append(c); tr.append(td); }
      else tr.append(el('td', null, c === undefined || c === null ? '' : c));
    }
    t.append(tr);
  }
  return t;
}
function clock(t) {
  if (!t) return '';
  const s = String(t);
  const m = s.match(/T(\d\d:\d\d:\d\d)/);
  return m ? m[1] : s;
}
function healthKind(h) {
  return h === 'healthy' ? 'ok' : (h === 'unhealthy' || h === 'failed') ? 'bad' : 'warn';
}
async function get(path) {
  const r = await fetch(base + path, { cache: 'no-store', credentials: 'same-origin' });
  let v = null;
  try { v = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) throw new Error((v && v.error) || (r.status + ' ' + r.statusText));
  if (v && v.error) throw new Error(v.error);
  return v;
}

// --- services and tasks ---------------------------------------------------
function drawServices(st) {
  document.getElementById('where').textContent =
    (st.project || '') + ' · environment ' + (st.environment || '?') + ' · supervisor pid ' + st.pid;
  const units = st.units || [];
  if (!units.length) { fill('services', el('p', 'dim', 'no services')); return; }
  const wrap = el('div', 'units');
  const now = Date.now();
  for (const u of units) {
    const card = el('div', 'unit');
    card.dataset.unit = u.name;
    const h = el('h3');
    h.append(el('span', 'name', u.name));
    const tasks = u.tasks || [];
    const healthy = tasks.filter(t => t.phase === 'running' && t.health === 'healthy').length;
    h.append(badge(healthy + '/' + u.desired + ' healthy', healthy >= u.desired ? 'ok' : 'warn'));
    h.append(el('span', 'dim', 'revision ' + u.revision + (u.runtime ? ' · ' + u.runtime : '')));
    if (u.url) h.append(el('span', 'dim', u.url));
    if (u.deployment) h.append(badge('deploying ' + u.deployment.from + '→' + u.deployment.revision, 'info'));
    card.append(h);
    if (tasks.length) {
      card.append(table(['task', 'rev', 'phase', 'health', 'port', 'up', 'capacity', 'last check'],
        tasks.map(t => [t.id, t.revision, t.phase, badge(t.health, healthKind(t.health)), t.port,
          t.uptime_secs + 's', t.capacity || '', t.health !== 'healthy' ? (t.last_failure || '') : ''])));
    } else {
      card.append(el('p', 'dim', 'no task running'));
    }
    const last = u.last_deployment;
    if (last && last.outcome && last.outcome !== 'completed') {
      card.append(el('p', 'error', 'last deployment ' + last.id + ' (revision ' + last.revision + '): ' +
        last.outcome + (last.reason ? ' — ' + last.reason : '')));
    }
    wrap.append(card);
    const s = sampled.get(u.name) || [];
    s.push([now, healthy]);
    while (s.length > SAMPLES) s.shift();
    sampled.set(u.name, s);
  }
  fill('services', wrap);
}

// --- deployments in progress ----------------------------------------------
function drawDeployments(st, hist) {
  const rows = [];
  const list = el('div');
  for (const u of st.units || []) {
    const d = u.deployment;
    if (!d) continue;
    const tasks = u.tasks || [];
    const newer = tasks.filter(t => t.revision === d.revision);
    const older = tasks.filter(t => t.revision !== d.revision && t.phase === 'running');
    const box = el('div', 'unit');
    const h = el('h3');
    h.append(el('span', 'name', u.name), badge(d.kind, 'info'),
      el('span', null, 'revision ' + d.from + ' → ' + d.revision));
    box.append(h);
    box.append(el('div', null,
      newer.filter(t => t.health === 'healthy').length + ' of ' + u.desired + ' new task(s) healthy, ' +
      newer.length + ' started, ' + older.length + ' old still running, ' +
      (d.failed_tasks || 0) + ' failed'));
    if (u.build) box.append(el('div', 'dim', 'building (build ' + u.build.id + ', ' + u.build.seconds + ' s)' +
      (u.build.last_line ? ': ' + u.build.last_line : '')));
    const steps = el('ol', 'steps');
    for (const e of recentEvents.filter(e => e.unit === u.name).slice(-8)) {
      steps.append(el('li', null, clock(e.time) + ' ' + e.kind + ': ' + e.message));
    }
    if (steps.childElementCount) box.append(steps);
    rows.push(box);
  }
  if (rows.length) list.append(...rows);
  else list.append(el('p', 'dim', 'none in progress'));
  if (hist && hist.units) {
    const ended = [];
    for (const u of hist.units) for (const h of (u.history || [])) ended.push([u.unit, h]);
    ended.sort((a, b) => String(b[1].ended || b[1].started).localeCompare(String(a[1].ended || a[1].started)));
    if (ended.length) {
      list.append(el('h4', 'dim', 'recent'));
      list.append(table(['unit', 'id', 'rev', 'kind', 'outcome', 'ended'], ended.slice(0, 8).map(([n, h]) =>
        [n, h.id, h.from + '→' + h.revision, h.kind,
          badge(h.outcome || 'in progress', h.outcome === 'completed' ? 'ok' : h.outcome ? 'bad' : 'info'),
          clock(h.ended)])));
    }
  } else if (hist && hist.failed) {
    list.append(el('p', 'error', 'history: ' + hist.failed));
  }
  fill('deployments', list);
}

// --- charts ----------------------------------------------------------------
function fmt(v) {
  if (!isFinite(v)) return '';
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(1) + 'G';
  if (a >= 1e6) return (v / 1e6).toFixed(1) + 'M';
  if (a >= 1e4) return (v / 1e3).toFixed(1) + 'k';
  if (a >= 100 || Number.isInteger(v)) return String(Math.round(v));
  return v.toFixed(2);
}
// One chart: lines = [{label, points: [[t_ms, v], ...]}].
function chart(title, lines, unitLabel) {
  const W = 300, H = 90;
  const box = el('div', 'chart-box');
  box.append(el('h4', null, title + (unitLabel ? ' (' + unitLabel + ')' : '')));
  const all = lines.flatMap(l => l.points).filter(p => Array.isArray(p) && isFinite(p[0]) && isFinite(p[1]));
  const s = svg('svg', { class: 'chart', viewBox: '0 0 ' + W + ' ' + H, preserveAspectRatio: 'none', role: 'img' });
  s.setAttribute('aria-label', title);
  for (const y of [0.25, 0.5, 0.75]) s.append(svg('line', { class: 'grid', x1: 0, x2: W, y1: H * y, y2: H * y }));
  if (!all.length) {
    box.append(s, el('div', 'dim', 'no data points yet'));
    return box;
  }
  let t0 = Math.min(...all.map(p => p[0])), t1 = Math.max(...all.map(p => p[0]));
  let v0 = Math.min(0, ...all.map(p => p[1])), v1 = Math.max(...all.map(p => p[1]));
  if (t1 === t0) { t0 -= 1000; t1 += 1000; }
  if (v1 === v0) v1 = v0 + 1;
  const top = v1 + (v1 - v0) * 0.08; // a little room above the highest point
  const x = t => ((t - t0) / (t1 - t0)) * W;
  const y = v => H - 3 - ((v - v0) / (top - v0)) * (H - 6);
  const legend = el('div', 'legend');
  lines.forEach((l, i) => {
    const pts = l.points.filter(p => Array.isArray(p) && isFinite(p[0]) && isFinite(p[1]));
    if (!pts.length) return;
    let d = pts.map((p, j) => (j ? 'L' : 'M') + x(p[0]).toFixed(1) + ' ' + y(p[1]).toFixed(1)).join(' ');
    if (pts.length === 1) d += ' L' + (x(pts[0][0]) + 2).toFixed(1) + ' ' + y(pts[0][1]).toFixed(1);
    const path = svg('path', { class: 'line c' + (i % 6), d: d });
    path.setAttribute('data-points', pts.length);
    const tip = svg('title');
    tip.textContent = l.label + ': last ' + fmt(pts[pts.length - 1][1]);
    path.append(tip);
    s.append(path);
    legend.append(el('span', 'c' + (i % 6), l.label + ' ' + fmt(pts[pts.length - 1][1])));
  });
  const scale = el('div', 'scale');
  scale.append(el('span', null, clock(new Date(t0).toISOString())),
    el('span', null, fmt(v0) + ' – ' + fmt(v1)),
    el('span', null, clock(new Date(t1).toISOString())));
  box.append(s, scale, legend);
  return box;
}
function seriesLabel(s) {
  const dims = s.dimensions || {};
  const extra = Object.entries(dims)
    .filter(([k]) => !['ServiceName', 'ClusterName', 'QueueName', 'LoadBalancer', 'TargetGroup'].includes(k))
    .map(([k, v]) => k + '=' + v).join(' ');
  return (s.unit || dims.ServiceName || dims.QueueName || '?') + (s.stat && s.stat !== 'Average' ? ' ' + s.stat : '') + (extra ? ' ' + extra : '');
}
function drawMetrics(m, failed) {
  const charts = el('div', 'charts');
  // From this page's own polls: always there.
  charts.append(chart('Healthy tasks (sampled by this page)',
    [...sampled.entries()].map(([u, pts]) => ({ label: u, points: pts }))));
  const parts = [];
  if (failed) {
    parts.push(el('p', 'error', 'metrics: ' + failed));
  } else {
    const byMetric = new Map();
    for (const s of (m.series || [])) {
      const key = (s.namespace ? s.namespace + ' ' : '') + s.metric;
      if (!byMetric.has(key)) byMetric.set(key, []);
      byMetric.get(key).push({ label: seriesLabel(s), points: s.points || [] });
    }
    // The metrics a reader looks at first, first; the rest by name.
    const first = ['CPUUtilization', 'MemoryUtilization', 'RequestCount', 'TargetResponseTime',
      'HTTPCode_Target_5XX_Count', 'RunningTaskCount', 'UnHealthyHostCount',
      'ApproximateNumberOfMessagesVisible', 'ApproximateAgeOfOldestMessage'];
    const rank = k => { const i = first.indexOf(k.split(' ').pop()); return i < 0 ? first.length : i; };
    const ordered = [...byMetric.entries()].sort((a, b) => rank(a[0]) - rank(b[0]) || a[0].localeCompare(b[0]));
    for (const [k, lines] of ordered) {
      const c = chart(k, lines);
      c.dataset.source = 'metrics';
      charts.append(c);
    }
    document.getElementById('metrics-range').textContent =
      (m.period_s ? 'period ' + m.period_s + ' s · ' : '') + (m.series || []).length + ' series, last 15 min';
    if (!(m.series || []).length) parts.push(el('p', 'dim', 'no metric series yet'));
  }
  fill('metrics', ...parts, charts);
}

// --- alarms and activity ---------------------------------------------------
function drawAlarms(a) {
  const list = a.alarms || [];
  if (!list.length) { fill('alarms', el('p', 'dim', 'no alarms')); return; }
  const kind = s => s === 'OK' ? 'ok' : s === 'ALARM' ? 'bad' : 'warn';
  const rows = list.map(x => [badge(x.state, kind(x.state)), x.name, x.unit, x.metric,
    x.threshold, clock(x.updated), (() => { const td = el('span', 'dim', x.reason || ''); return td; })()]);
  const t = table(['state', 'alarm', 'unit', 'metric', 'threshold', 'since', 'reason'], rows);
  const hist = [];
  for (const x of list) for (const h of (x.history || [])) hist.push([x.name, h]);
  hist.sort((p, q) => String(q[1].time).localeCompare(String(p[1].time)));
  const parts = [t];
  if (hist.length) {
    parts.push(el('h4', 'dim', 'history'));
    parts.push(table(['time', 'alarm', 'change', 'reason'],
      hist.slice(0, 10).map(([n, h]) => [clock(h.time), n, h.from + ' → ' + h.to, h.reason || ''])));
  }
  fill('alarms', ...parts);
}
function drawActivity(a) {
  const list = (a.activities || []).slice(-15).reverse();
  if (!list.length) { fill('activity', el('p', 'dim', 'no scaling activity')); return; }
  fill('activity', table(['time', 'unit', 'count', 'status', 'cause'], list.map(x =>
    [clock(x.time), x.unit, x.from + ' → ' + x.to,
      badge(x.status, x.status === 'Successful' ? 'ok' : x.status === 'Failed' ? 'bad' : 'info'),
      (() => { const s = el('span', null, x.cause || ''); return s; })()])));
}

// --- the live tail -------------------------------------------------------------
function drawEvents(v) {
  const log = document.getElementById('log');
  const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  for (const e of v.entries || []) {
    if (e.source === 'event') {
      recentEvents.push(e);
      while (recentEvents.length > 200) recentEvents.shift();
    }
    const line = el('div', e.source === 'event' ? 'event' : e.kind === 'stderr' ? 'stderr' : null,
      clock(e.time) + ' ' + (e.unit || '-').padEnd(14) + ' ' + (e.source === 'event' ? e.kind : e.source).padEnd(10) +
      ' ' + e.message);
    log.append(line);
  }
  while (log.childElementCount > 400) log.firstElementChild.remove();
  if (typeof v.next === 'number') lastEvent = v.next;
  if (atEnd) log.scrollTop = log.scrollHeight;
}

// --- the loop ---------------------------------------------------------------
async function poll() {
  const conn = document.getElementById('conn');
  try {
    await get('api/events?after=' + lastEvent).then(drawEvents);
  } catch (e) {
    document.getElementById('log').append(el('div', 'failed', 'the tail failed: ' + e.message));
  }
  try {
    const v = await get('api/status');
    lastStatus = v.status || {};
    drawServices(lastStatus);
    conn.textContent = 'live';
    conn.className = 'badge ok';
  } catch (e) {
    conn.textContent = 'disconnected: ' + e.message;
    conn.className = 'badge bad';
    showError('services', 'status: ' + e.message);
  }
  const tasks = [
    get('api/deployments').then(h => h, e => ({ failed: e.message })).then(h => {
      if (lastStatus) drawDeployments(lastStatus, h);
    }),
    get('api/metrics?since_s=900').then(m => drawMetrics(m, null), e => drawMetrics(null, e.message)),
    get('api/alarms').then(drawAlarms, e => showError('alarms', 'alarms: ' + e.message)),
    get('api/activity').then(drawActivity, e => showError('activity', 'scaling activity: ' + e.message)),
  ];
  await Promise.all(tasks.map(p => p.catch(e => console.error(e))));
  document.getElementById('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
  setTimeout(poll, POLL_MS);
}
poll();
