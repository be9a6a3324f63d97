// The compressd dashboard: fills the page shell compressd serves (dashboard.cc)
// from the JSON API (dashboard_api.h). Plain browser JavaScript, no build step;
// charts are Chart.js (Debian's libjs-chart.js, served at /static/chart.js).
// Every text from the server goes through textContent (never innerHTML).
'use strict';

const TERMINAL = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);
const STATES = ['QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'];
let WHO = { role: 'viewer', tenant: '', key_id: '' };

// ---- small helpers ----
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const main = () => document.getElementById('main');
const canWrite = () => WHO.role === 'admin' || WHO.role === 'member';

async function api(path, options) {
  const opts = Object.assign({ credentials: 'same-origin', headers: {} }, options || {});
  if (opts.method === 'POST') {
    opts.headers['X-Requested-By'] = 'compressd-dashboard';
    opts.headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(path, opts);
  const text = await res.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = { message: text }; }
  if (!res.ok) {
    const err = new Error((body && body.message) || res.statusText);
    err.status = res.status;
    err.code = body && body.code;
    throw err;
  }
  return body;
}

function fmtBytes(n) {
  n = Number(n || 0);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + ' ' + units[i];
}
function fmtTime(ms) {
  ms = Number(ms || 0);
  return ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) + ' UTC' : '';
}
function fmtDur(ms) {
  let s = Math.max(0, Math.round(Number(ms) / 1000));
  if (s < 60) return s + ' s';
  const m = Math.floor(s / 60); s %= 60;
  if (m < 60) return m + ' min ' + s + ' s';
  return Math.floor(m / 60) + ' h ' + (m % 60) + ' min';
}
function fmtNum(x, digits) {
  if (x === undefined || x === null || Number.isNaN(Number(x))) return '';
  return Number(x).toPrecision(digits || 4);
}
function table(caption, headers, rows) {
  return h('div', { class: 'table-wrap' }, h('table', {},
    caption ? h('caption', {}, caption) : null,
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, rows)));
}
function stateCell(state) { return h('td', { class: 'state ' + state }, state); }
function showError(err) {
  const old = document.getElementById('error');
  const p = h('p', { role: 'alert', id: 'error' }, err.message || String(err));
  if (old) old.replaceWith(p); else main().prepend(p);
}
function summaryOf(job) {
  try { return job.summaryJson ? JSON.parse(job.summaryJson) : {}; } catch (e) { return {}; }
}
function stagesOf(job) {
  const stages = (job.recipe && job.recipe.stages) || [];
  return stages.map((s) => Object.keys(s)[0]).join(' + ') || 'evaluate';
}
function progressBar(p, state) {
  const total = Number((p && p.total) || 0), cur = Number((p && p.current) || 0);
  const done = state === 'SUCCEEDED';
  const label = p && p.stage ? p.stage + (total ? ' ' + cur + '/' + total : '') : (done ? 'done' : '');
  return h('span', {},
    h('progress', { max: total || 1, value: done ? (total || 1) : cur, 'aria-label': 'progress ' + label }),
    ' ', h('span', { class: 'muted' }, label));
}

// ---- jobs ----
async function jobsPage() {
  const q = new URLSearchParams(location.search);
  const filters = h('form', { class: 'filters', method: 'get', action: '/jobs', 'aria-label': 'Filter jobs' },
    h('label', {}, 'State', h('select', { name: 'state' }, h('option', { value: '' }, 'any'),
      STATES.map((s) => h('option', { value: s, selected: q.get('state') === s }, s)))),
    h('label', {}, 'Model id', h('input', { name: 'model', value: q.get('model') || '', size: 18 })),
    WHO.role === 'admin' ? h('label', {}, 'Tenant', h('input', { name: 'tenant', value: q.get('tenant') || '', size: 10 })) : null,
    h('button', { type: 'submit' }, 'Filter'));
  const body = h('div', { id: 'jobs' });
  main().replaceChildren(h('h1', {}, 'Jobs'), filters, body);
  const render = async () => {
    const params = new URLSearchParams({ order: 'newest', page_size: '25' });
    for (const k of ['state', 'model', 'tenant', 'page_token']) if (q.get(k)) params.set(k, q.get(k));
    const resp = await api('/api/jobs?' + params);
    const rows = (resp.jobs || []).map((j) => h('tr', { 'data-job': j.id },
      h('td', {}, h('a', { href: '/jobs/' + j.id }, j.id)),
      h('td', {}, h('a', { href: '/models/' + j.modelId }, j.modelId)),
      h('td', {}, j.tenant), h('td', {}, stagesOf(j)), stateCell(j.state),
      h('td', {}, progressBar(j.progress, j.state)),
      h('td', {}, fmtTime(j.createTimeMs)),
      h('td', { class: 'wrap' }, j.error || j.waitingReason || '')));
    const pager = h('div', { class: 'pager' },
      q.get('page_token') ? h('a', { href: '?' + without(q, 'page_token') }, '« Newest') : null,
      resp.nextPageToken ? h('a', { href: '?' + withParam(q, 'page_token', resp.nextPageToken), rel: 'next' }, 'Older »') : null);
    body.replaceChildren(table(rows.length ? null : 'No jobs match.',
      ['Job', 'Model', 'Tenant', 'Method', 'State', 'Progress', 'Created', 'Note'], rows), pager);
  };
  await render();
  if (!q.get('page_token')) setInterval(() => render().catch(showError), 3000);
}
function without(q, key) { const c = new URLSearchParams(q); c.delete(key); return c.toString(); }
function withParam(q, key, v) { const c = new URLSearchParams(q); c.set(key, v); return c.toString(); }

// ---- one job ----
class JobView {
  constructor(id) {
    this.id = id; this.seq = 0; this.job = null;
    this.layers = {};        // metric -> Map(layer -> value), insertion order = layer order
    this.fitness = [];       // [generation, fitness]
    this.units = [];         // EvoPress unit names by index
    this.best = null;        // {generation, levels}
    this.ppl = {};           // dataset -> {dense, compressed}
    this.kl = {};            // dataset -> mean KL
    this.phase = {};         // stage -> seconds (from progress events)
    this.stageSeen = {};     // stage -> first time_ms
    this.lastProgress = null;
    this.logs = [];
    this.charts = {};
  }
  apply(e) {
    this.seq = Math.max(this.seq, Number(e.sequence));
    const t = Number(e.timeMs);
    if (e.metric) this.applyMetric(e.metric);
    if (e.progress) {
      const st = e.progress.stage || '';
      if (!(st in this.stageSeen)) this.stageSeen[st] = t;
      if (this.lastProgress) {
        const prev = this.lastProgress.stage;
        this.phase[prev] = (this.phase[prev] || 0) + (t - this.lastProgress.t) / 1000;
      }
      this.lastProgress = { stage: st, t };
    }
    if (e.log) this.logs.push({ t, level: e.log.level, text: e.log.message });
    if (e.state) this.logs.push({ t, level: 'state', text: (e.state.from || '') + ' → ' + e.state.to + (e.state.reason ? ': ' + e.state.reason : '') });
  }
  applyMetric(m) {
    const labels = m.labels || {}, v = Number(m.value);
    if (labels.layer && ['reconstruction_error', 'sparsity', 'bits', 'seconds'].includes(m.name)) {
      if (!this.layers[m.name]) this.layers[m.name] = new Map();
      this.layers[m.name].set(labels.layer, v);
    } else if (m.name === 'fitness') {
      this.fitness.push([Number(labels.generation), v]);
    } else if (m.name === 'search_unit') {
      this.units[v] = labels.unit;
    } else if (m.name === 'best_levels') {
      this.best = { generation: Number(labels.generation), levels: (labels.levels || '').split(',').map(Number) };
    } else if (m.name === 'perplexity') {
      const d = (this.ppl[labels.dataset] = this.ppl[labels.dataset] || {});
      d[labels.model === 'dense' ? 'dense' : 'compressed'] = v;
    } else if (m.name === 'kl') {
      this.kl[labels.dataset] = v;
    }
  }
}

const LAYER_CHARTS = [
  ['reconstruction_error', 'Reconstruction error per layer', 'relative error'],
  ['sparsity', 'Sparsity per layer', 'fraction of zeros'],
  ['bits', 'Bits per weight, per layer', 'bits'],
];

function chartFigure(key, title) {
  return h('figure', { id: 'fig-' + key, 'data-chart': key, 'data-points': 0 },
    h('figcaption', {}, title),
    h('div', { class: 'canvas-box' }, h('canvas', { role: 'img', 'aria-label': title })),
    h('p', { class: 'empty' }, 'No data yet.'));
}

function setChart(view, key, type, labels, datasets, options) {
  const fig = document.getElementById('fig-' + key);
  const points = datasets.reduce((n, d) => n + d.data.length, 0);
  fig.dataset.points = String(points);
  fig.querySelector('.empty').hidden = points > 0;
  fig.querySelector('.canvas-box').hidden = points === 0;
  if (points === 0 || typeof Chart === 'undefined') return;
  const chart = view.charts[key];
  if (chart) {
    chart.data.labels = labels; chart.data.datasets = datasets; chart.update('none');
    return;
  }
  view.charts[key] = new Chart(fig.querySelector('canvas'), {
    type, data: { labels, datasets },
    options: Object.assign({ animation: false, maintainAspectRatio: false, responsive: true,
      plugins: { legend: { display: datasets.length > 1 } } }, options || {}),
  });
}

function shortLayer(name) { return name.replace(/^model\.layers\./, '').replace(/^model\./, ''); }

function drawCharts(view) {
  for (const [metric] of LAYER_CHARTS) {
    const m = view.layers[metric] || new Map();
    setChart(view, metric, 'bar', [...m.keys()].map(shortLayer),
      [{ label: metric, data: [...m.values()], backgroundColor: '#0550ae' }],
      { scales: { x: { ticks: { autoSkip: true, maxRotation: 60 } } } });
  }
  const summary = summaryOf(view.job);
  const phases = Object.keys(summary.timing_seconds || {}).length ? summary.timing_seconds : view.phase;
  const names = Object.keys(phases).filter((k) => k !== 'total' && phases[k] > 0);
  setChart(view, 'phases', 'doughnut', names, [{ label: 'seconds', data: names.map((k) => phases[k]),
    backgroundColor: ['#0550ae', '#1a7f37', '#9a6700', '#cf222e', '#8250df', '#57606a', '#0a3069', '#bc4c00'] }],
  { plugins: { legend: { display: true, position: 'right' } } });
  const sets = Object.keys(view.ppl);
  setChart(view, 'quality', 'bar', sets, [
    { label: 'dense', data: sets.map((s) => view.ppl[s].dense).filter((x) => x !== undefined), backgroundColor: '#57606a' },
    { label: 'compressed', data: sets.map((s) => view.ppl[s].compressed).filter((x) => x !== undefined), backgroundColor: '#0550ae' },
  ], { scales: { y: { title: { display: true, text: 'perplexity' } } } });
  const klText = Object.entries(view.kl).map(([s, v]) => 'KL on ' + s + ': ' + fmtNum(v)).join('; ');
  document.querySelector('#fig-quality .kl').textContent = klText;
  setChart(view, 'fitness', 'line', view.fitness.map((f) => f[0] + 1),
    [{ label: 'fitness (lower is better)', data: view.fitness.map((f) => f[1]), borderColor: '#0550ae', pointRadius: 2 }],
    { scales: { x: { title: { display: true, text: 'generation' } } } });
  drawHeatmap(view);
}

// EvoPress: the current best configuration's level per unit, as a grid of
// blocks (columns) by module (rows).
function drawHeatmap(view) {
  const fig = document.getElementById('fig-heatmap');
  const best = view.best;
  const canvas = fig.querySelector('canvas');
  if (!best || !view.units.length) { fig.dataset.points = '0'; return; }
  const rows = [], cols = [], cells = [];
  best.levels.forEach((lvl, i) => {
    const name = view.units[i] || String(i);
    const m = /layers\.(\d+)\.(.*)$/.exec(name);
    const block = m ? Number(m[1]) : i, kind = m ? m[2] : name;
    if (!rows.includes(kind)) rows.push(kind);
    if (!cols.includes(block)) cols.push(block);
    cells.push([rows.indexOf(kind), cols.indexOf(block), lvl]);
  });
  const lo = Math.min(...best.levels), hi = Math.max(...best.levels);
  const cw = 18, ch = 20, left = 86;
  canvas.width = left + cols.length * cw; canvas.height = rows.length * ch + 26;
  const g = canvas.getContext('2d');
  g.fillStyle = '#fff'; g.fillRect(0, 0, canvas.width, canvas.height);
  g.font = '12px sans-serif'; g.fillStyle = '#1b1f24';
  rows.forEach((r, i) => g.fillText(r.replace(/^(self_attn|mlp)\./, ''), 2, i * ch + 14));
  for (const [r, c, lvl] of cells) {
    const f = hi > lo ? (lvl - lo) / (hi - lo) : 0.5;
    g.fillStyle = 'hsl(' + Math.round(220 - 180 * f) + ', 70%, ' + Math.round(30 + 35 * f) + '%)';
    g.fillRect(left + c * cw, r * ch, cw - 1, ch - 1);
  }
  g.fillStyle = '#57606a';
  g.fillText('blocks 0 … ' + (cols.length - 1) + ' →   level ' + lo + ' (dark) … ' + hi + ' (light)', left, rows.length * ch + 17);
  fig.dataset.points = String(cells.length);
  fig.querySelector('.empty').hidden = true;
  canvas.hidden = false;
  fig.querySelector('figcaption').textContent = 'Allocation of the best configuration (generation ' + (best.generation + 1) + ')';
}

function jobSummary(view) {
  const j = view.job, p = j.progress || {};
  const total = Number(p.total || 0), cur = Number(p.current || 0);
  let eta = '';
  if (!TERMINAL.has(j.state) && total > 0 && cur > 0 && view.stageSeen[p.stage]) {
    const elapsed = Date.now() - view.stageSeen[p.stage];
    eta = fmtDur(elapsed / cur * (total - cur)) + ' left in ' + p.stage;
  }
  const s = summaryOf(j), totals = s.totals || {};
  const items = [
    ['State', h('span', { class: 'state ' + j.state, id: 'job-state' }, j.state)],
    ['Progress', progressBar(p, j.state)], ['ETA', eta || '—'],
    ['Model', h('a', { href: '/models/' + j.modelId }, j.modelId)], ['Tenant', j.tenant],
    ['Method', stagesOf(j)], ['Attempts', j.attempts + ' / ' + j.maxAttempts],
    ['Created', fmtTime(j.createTimeMs)],
    ['Duration', j.startTimeMs && Number(j.startTimeMs) ? fmtDur((Number(j.endTimeMs) || Date.now()) - Number(j.startTimeMs)) : '—'],
  ];
  if (totals.sparsity !== undefined) items.push(['Sparsity', fmtNum(totals.sparsity, 3)]);
  if (totals.targeted_bits_per_parameter !== undefined) items.push(['Bits / parameter', fmtNum(totals.targeted_bits_per_parameter, 3)]);
  if (j.error || j.waitingReason) items.push(['Note', j.error || j.waitingReason]);
  return h('dl', { class: 'summary' }, items.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v))));
}

function jobActions(view) {
  const j = view.job, box = h('div', { class: 'actions' });
  if (canWrite() && !TERMINAL.has(j.state)) {
    box.append(h('button', { class: 'danger', id: 'cancel', type: 'button', onclick: async (ev) => {
      ev.target.disabled = true;
      try { view.job = await api('/api/jobs/' + view.id + '/cancel', { method: 'POST', body: '{}' }); renderJob(view); } catch (e) { showError(e); ev.target.disabled = false; }
    } }, 'Cancel job'));
  }
  return box;
}

function artifactsTable(job) {
  const rows = (job.artifacts || []).map((a) => h('tr', {},
    h('td', {}, h('a', { href: '/api/artifacts/' + a.id, download: a.path.split('/').pop() }, a.path)),
    h('td', {}, fmtBytes(a.size)), h('td', { title: a.sha256 }, (a.sha256 || '').slice(0, 16) + '…')));
  return table(rows.length ? null : 'No files yet.', ['File', 'Size', 'sha256'], rows);
}

function logView(view) {
  return h('div', { class: 'log', role: 'log', 'aria-label': 'Event log' },
    view.logs.slice(-300).reverse().map((l) => h('div', { class: l.level }, fmtTime(l.t).slice(11, 19) + '  ' + l.text)));
}

async function recipeSection(view) {
  const yaml = await api('/api/jobs/' + view.id + '/recipe.yaml');
  const box = h('section', { 'aria-labelledby': 'recipe-h' }, h('h2', { id: 'recipe-h' }, 'Recipe'),
    h('pre', { id: 'recipe' }, yaml));
  if (canWrite()) {
    const area = h('textarea', { id: 'resubmit-recipe', 'aria-label': 'Recipe to submit' }, yaml);
    box.append(h('details', {}, h('summary', {}, 'Resubmit with changes'), area,
      h('div', { class: 'actions' }, h('button', { class: 'primary', type: 'button', id: 'resubmit', onclick: async () => {
        try {
          const job = await api('/api/jobs', { method: 'POST', body: JSON.stringify({
            model_id: view.job.modelId, recipe: area.value, dataset_ids: view.job.datasetIds || [],
            priority: view.job.priority && view.job.priority !== 'PRIORITY_UNSPECIFIED' ? view.job.priority : undefined }) });
          location.href = '/jobs/' + job.id;
        } catch (e) { showError(e); }
      } }, 'Submit as a new job'))));
  }
  return box;
}

function renderJob(view) {
  document.getElementById('job-summary').replaceChildren(jobSummary(view));
  document.getElementById('job-actions').replaceChildren(jobActions(view));
  document.getElementById('artifacts').replaceChildren(artifactsTable(view.job));
  document.getElementById('events').replaceChildren(logView(view));
  drawCharts(view);
  document.body.dataset.seq = String(view.seq);
  document.body.dataset.state = view.job.state;
  document.body.dataset.ready = '1';
}

async function jobPage(id) {
  const view = new JobView(id);
  window.compressdJob = view;  // for the browser tests and curious users
  view.job = await api('/api/jobs/' + id);
  const quality = chartFigure('quality', 'Perplexity before and after');
  quality.append(h('p', { class: 'kl muted' }));
  main().replaceChildren(
    h('h1', {}, 'Job ', id), h('div', { id: 'job-summary' }), h('div', { id: 'job-actions' }),
    h('section', { 'aria-labelledby': 'charts-h' }, h('h2', { id: 'charts-h' }, 'Metrics'),
      h('div', { class: 'charts' }, LAYER_CHARTS.map(([k, t]) => chartFigure(k, t)),
        chartFigure('phases', 'Time per phase (s)'), quality,
        chartFigure('fitness', 'EvoPress fitness per generation'),
        h('figure', { id: 'fig-heatmap', class: 'wide', 'data-chart': 'heatmap', 'data-points': 0 },
          h('figcaption', {}, 'EvoPress allocation'),
          h('canvas', { class: 'heatmap', role: 'img', 'aria-label': 'Level per module and block', hidden: true }),
          h('p', { class: 'empty' }, 'No search in this job.'))),
    ),
    h('section', { 'aria-labelledby': 'files-h' }, h('h2', { id: 'files-h' }, 'Files'), h('div', { id: 'artifacts' })),
    h('section', { 'aria-labelledby': 'events-h' }, h('h2', { id: 'events-h' }, 'Events'), h('div', { id: 'events' })));
  main().append(await recipeSection(view));
  renderJob(view);
  for (;;) {
    let resp;
    try {
      resp = await api('/api/jobs/' + id + '/events?after=' + view.seq + '&limit=2000&wait_ms=' + (TERMINAL.has(view.job.state) ? 0 : 5000));
    } catch (e) {
      showError(e);
      await new Promise((r) => setTimeout(r, 3000));
      continue;
    }
    for (const e of resp.events) view.apply(e);
    // Nothing new (a long-poll that timed out): leave the page as it is, so
    // a button or link under the pointer is not replaced.
    const changed = resp.events.length > 0 || JSON.stringify(resp.job) !== JSON.stringify(view.job);
    view.job = resp.job;
    if (changed) renderJob(view);
    if (TERMINAL.has(view.job.state) && resp.events.length === 0) break;
  }
}

// ---- models, datasets, workers ----
function archText(a) {
  if (!a || !a.architecture) return '';
  const p = a.parameters ? ' · ' + (Number(a.parameters) / 1e6).toFixed(1) + 'M params' : '';
  return a.architecture + (a.layers ? ' · ' + a.layers + ' layers' : '') + (a.hidden_size ? ' · hidden ' + a.hidden_size : '') + p;
}

async function modelsPage() {
  const resp = await api('/api/models');
  const rows = (resp.models || []).map((m) => h('tr', {},
    h('td', {}, h('a', { href: '/models/' + m.id }, m.name || m.id)), h('td', {}, m.format),
    h('td', {}, fmtBytes(m.totalBytes)), h('td', {}, archText(m.architecture)), h('td', {}, m.tenant),
    h('td', {}, fmtTime(m.createTimeMs)), h('td', {}, m.id)));
  main().replaceChildren(h('h1', {}, 'Models'), table(rows.length ? null : 'No models uploaded.',
    ['Name', 'Format', 'Size', 'Architecture', 'Tenant', 'Uploaded', 'Id'], rows));
}

function jobQuality(j) {
  const s = summaryOf(j), ev = s.evaluation || {}, d = (ev.datasets || [])[0] || {};
  return { bits: (s.totals || {}).targeted_bits_per_parameter, sparsity: (s.totals || {}).sparsity,
    ppl: (d.perplexity || {}).compressed, dense: (d.perplexity || {}).dense, kl: (ev.kl || {}).mean_kl };
}

async function modelPage(id) {
  const resp = await api('/api/models/' + id);
  const m = resp.model, jobs = (resp.jobs && resp.jobs.jobs) || [];
  const arch = Object.entries(m.architecture || {});
  const files = (m.files || []).map((f) => h('tr', {}, h('td', {}, f.path), h('td', {}, fmtBytes(f.size)), h('td', { title: f.sha256 }, f.sha256.slice(0, 16) + '…')));
  const rows = jobs.map((j) => {
    const q = jobQuality(j);
    return h('tr', {}, h('td', {}, h('a', { href: '/jobs/' + j.id }, j.id)), stateCell(j.state), h('td', {}, stagesOf(j)),
      h('td', {}, fmtNum(q.bits, 3)), h('td', {}, fmtNum(q.sparsity, 3)), h('td', {}, fmtNum(q.ppl)), h('td', {}, fmtNum(q.kl)),
      h('td', {}, fmtTime(j.createTimeMs)));
  });
  const pick = h('select', { id: 'compare-metric', 'aria-label': 'Quality measure' },
    h('option', { value: 'ppl' }, 'perplexity'), h('option', { value: 'kl' }, 'KL divergence'));
  main().replaceChildren(h('h1', {}, m.name || m.id),
    h('dl', { class: 'summary' }, [['Id', m.id], ['Format', m.format], ['Size', fmtBytes(m.totalBytes)], ['Tenant', m.tenant],
      ['Uploaded', fmtTime(m.createTimeMs)], ...arch].map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v)))),
    h('h2', {}, 'Files'), table(null, ['File', 'Size', 'sha256'], files),
    h('h2', {}, 'Jobs on this model'), table(rows.length ? null : 'No jobs yet.',
      ['Job', 'State', 'Method', 'Bits/param', 'Sparsity', 'Perplexity', 'KL', 'Created'], rows),
    h('h2', {}, 'Compare'), h('div', { class: 'filters' }, h('label', {}, 'Measure', pick)),
    h('div', { class: 'charts' }, chartFigure('compare', 'Quality against bits per parameter')));
  const view = { charts: {} };
  const draw = () => {
    const key = pick.value;
    const pts = jobs.map((j) => ({ j, q: jobQuality(j) })).filter((x) => x.q.bits !== undefined && x.q[key] !== undefined)
      .map((x) => ({ x: x.q.bits, y: x.q[key], id: x.j.id }));
    setChart(view, 'compare', 'scatter', undefined, [{ label: key, data: pts, backgroundColor: '#0550ae', pointRadius: 4 }], {
      scales: { x: { title: { display: true, text: 'bits per parameter' } }, y: { title: { display: true, text: key } } },
      plugins: { legend: { display: false }, tooltip: { callbacks: { label: (c) => c.raw.id + ': ' + fmtNum(c.raw.y) } } } });
  };
  pick.addEventListener('change', draw);
  draw();
}

async function datasetsPage() {
  const resp = await api('/api/datasets');
  const rows = (resp.datasets || []).map((d) => h('tr', {}, h('td', {}, d.name), h('td', { class: 'wrap' }, (d.files || []).map((f) => f.path).join(', ')),
    h('td', {}, fmtBytes(d.totalBytes)), h('td', {}, d.tenant), h('td', {}, fmtTime(d.createTimeMs)), h('td', {}, d.id)));
  main().replaceChildren(h('h1', {}, 'Datasets'), table(rows.length ? null : 'No datasets uploaded.',
    ['Name', 'Files', 'Size', 'Tenant', 'Uploaded', 'Id'], rows));
}

async function workersPage() {
  const body = h('div', {});
  main().replaceChildren(h('h1', {}, 'Workers'), body);
  const render = async () => {
    const resp = await api('/api/workers');
    const rows = resp.workers.map((w) => h('tr', {}, h('td', {}, w.name || w.worker_id),
      h('td', {}, w.device + (w.device_name ? ' (' + w.device_name + ', ' + fmtBytes(w.device_memory_bytes) + ')' : '')),
      h('td', {}, w.threads), h('td', {}, w.memory_bytes ? fmtBytes(w.memory_bytes) : 'unknown'),
      h('td', {}, w.busy ? (w.job_id ? h('a', { href: '/jobs/' + w.job_id }, w.job_id) : 'busy') : 'idle'),
      h('td', {}, w.busy ? fmtDur(w.lease_age_ms) : ''), h('td', {}, fmtDur(w.busy_ms)), h('td', {}, fmtDur(w.connected_ms))));
    body.replaceChildren(h('p', {}, 'Queue depth: ', h('b', {}, resp.queue_depth)),
      table(rows.length ? null : 'No workers connected.',
        ['Worker', 'Device', 'Threads', 'Memory', 'Current job', 'Lease age', 'Busy time', 'Connected'], rows));
  };
  await render();
  setInterval(() => render().catch(showError), 3000);
}

async function start() {
  const page = document.body.dataset.page, id = document.body.dataset.id;
  if (document.getElementById('error')) return;  // the server said why there is no page
  try {
    WHO = await api('/api/whoami');
    document.getElementById('whoami').textContent = WHO.tenant + ' · ' + WHO.role + ' · ' + WHO.key_id;
    document.body.dataset.role = WHO.role;
    const pages = { jobs: jobsPage, job: () => jobPage(id), models: modelsPage, model: () => modelPage(id),
      datasets: datasetsPage, workers: workersPage };
    await (pages[page] || jobsPage)();
    document.body.dataset.ready = '1';
  } catch (e) {
    showError(e);
  }
}
document.addEventListener('DOMContentLoaded', start);
