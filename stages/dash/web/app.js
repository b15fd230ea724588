/* app.js - gambar-dash's live page.
 *
 * Keeps a copy of every series (stage, run, name, labels -> points) fed by
 * /events: the first event ("state") carries everything the dashboard
 * holds, later ones ("metric", "checkpoint", "grid") one change each.
 * Charts (Chart.js, embedded by the server) and the DOM are redrawn at
 * most four times a second, so a fast trainer does not swamp the page. */
'use strict';
(function () {
  const MAX_POINTS = 5000;
  const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
  /* panel id -> [stage, name, legend, axis] lines */
  const PANELS = {
    loss: [['train', 'loss_d', 'loss D'], ['train', 'loss_g', 'loss G']],
    dx: [['train', 'd_real', 'D(x)'], ['train', 'd_fake', 'D(G(z))']],
    ips: [['train', 'images_per_second', 'images/s']],
    fid: [['eval', 'fid', 'FID'], ['eval', 'kid', 'KID', 'y2']],
    pr: [['eval', 'precision', 'precision'], ['eval', 'recall', 'recall']],
    bal: [['eval', 'class_kl', 'KL(train || generated)']],
  };
  const series = new Map();
  const charts = {};
  let received = 0, dropped = 0, dirty = false, gridVersion = -1;
  const $ = (id) => document.getElementById(id);

  function keyOf(m) {
    return [m.stage, m.run, m.name, JSON.stringify(m.labels || {})].join('\u0001');
  }
  function hasLabels(s) { return Object.keys(s.labels || {}).length > 0; }
  function fmt(v) {
    if (v === null || v === undefined) return 'n/a';
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(3);
    return String(Math.round(v * 1e4) / 1e4);
  }

  function makeCharts() {
    if (typeof Chart === 'undefined') { $('nochart').hidden = false; return; }
    for (const id of Object.keys(PANELS)) {
      const y2 = PANELS[id].some((l) => l[3] === 'y2');
      const scales = { x: { type: 'linear', title: { display: true, text: 'step' } }, y: { type: 'linear' } };
      if (y2) scales.y2 = { type: 'linear', position: 'right', grid: { drawOnChartArea: false } };
      charts[id] = new Chart($('c-' + id), {
        type: 'line',
        data: { datasets: [] },
        options: { animation: false, parsing: false, normalized: true, responsive: true, maintainAspectRatio: false,
                   elements: { point: { radius: 0 }, line: { borderWidth: 1.5 } },
                   interaction: { mode: 'nearest', intersect: false }, scales: scales },
      });
    }
    charts.cls = new Chart($('c-cls'), {
      type: 'bar', data: { labels: [], datasets: [] },
      options: { animation: false, responsive: true, maintainAspectRatio: false, scales: { y: { beginAtZero: true } } },
    });
  }

  function record(m, history) {
    const k = keyOf(m);
    let s = series.get(k);
    if (!s) {
      s = { stage: m.stage, run: m.run, name: m.name, labels: m.labels || {}, points: [] };
      series.set(k, s);
    }
    if (history) s.points = history.map((p) => ({ x: p[0], y: p[1] }));
    else {
      const last = s.points[s.points.length - 1];
      if (last && last.x === m.step) last.y = m.value; else s.points.push({ x: m.step, y: m.value });
      if (s.points.length > MAX_POINTS) s.points.splice(0, s.points.length - MAX_POINTS);
    }
    s.value = m.value; s.step = m.step; s.epoch = m.epoch;
    dirty = true;
  }

  function render() {
    if (!dirty) return;
    dirty = false;
    const all = Array.from(series.values());
    const runs = new Set(all.map((s) => s.run));
    /* header */
    const train = all.filter((s) => s.stage === 'train');
    const src = train.length ? train : all;
    if (src.length) {
      $('step').textContent = String(Math.max(...src.map((s) => s.step)));
      $('epoch').textContent = String(Math.max(...src.map((s) => s.epoch || 0)));
    }
    $('run').textContent = Array.from(runs).filter((r) => r).join(', ') || '-';
    $('msgs').textContent = String(received);
    $('dropped').textContent = String(dropped);
    /* line charts */
    for (const id of Object.keys(charts)) {
      if (id === 'cls') continue;
      const ds = [];
      let ci = 0;
      for (const [stage, name, legend, axis] of PANELS[id]) {
        for (const s of all) {
          if (s.stage !== stage || s.name !== name || hasLabels(s)) continue;
          const color = COLORS[ci++ % COLORS.length];
          ds.push({ label: legend + (runs.size > 1 ? ' (' + s.run + ')' : ''), data: s.points,
                    borderColor: color, backgroundColor: color, yAxisID: axis || 'y' });
        }
      }
      charts[id].data.datasets = ds;
      charts[id].update('none');
    }
    /* class shares: every series with a "class" label, grouped by name */
    if (charts.cls) {
      const cls = all.filter((s) => s.labels && s.labels.class !== undefined);
      const classes = Array.from(new Set(cls.map((s) => s.labels.class))).sort();
      const names = Array.from(new Set(cls.map((s) => s.name))).sort();
      charts.cls.data.labels = classes;
      charts.cls.data.datasets = names.map((n, i) => ({
        label: n, backgroundColor: COLORS[i % COLORS.length],
        data: classes.map((c) => { const s = cls.find((x) => x.name === n && x.labels.class === c); return s ? s.value : null; }),
      }));
      charts.cls.update('none');
    }
    /* table of latest values */
    const body = $('latest').tBodies[0];
    const rows = all.slice().sort((a, b) => (a.stage + a.name).localeCompare(b.stage + b.name));
    while (body.rows.length > rows.length) body.deleteRow(-1);
    rows.forEach((s, i) => {
      const row = body.rows[i] || body.insertRow();
      const cells = [s.stage, s.run || '-', s.name,
                     Object.entries(s.labels).map(([k, v]) => k + '=' + v).join(' '), fmt(s.value), String(s.step)];
      while (row.cells.length < cells.length) row.insertCell();
      cells.forEach((t, j) => { if (row.cells[j].textContent !== t) row.cells[j].textContent = t; });
      row.dataset.name = s.name;
    });
  }

  /* the strip: one figure per grid the server holds, newest first (the
   * server keeps the newest few; older figures are dropped here too) */
  const STRIP_MAX = 12;
  function addStrip(g) {
    const strip = $('strip');
    if (!g.version || strip.querySelector('figure[data-v="' + g.version + '"]')) return;
    /* a grid of the same step and source replaces its figure */
    for (const f of strip.querySelectorAll('figure'))
      if (f.dataset.step === String(g.step) && f.dataset.src === g.source) f.remove();
    const fig = document.createElement('figure');
    fig.dataset.v = String(g.version); fig.dataset.step = String(g.step); fig.dataset.src = g.source || '';
    const img = document.createElement('img');
    img.alt = 'samples at step ' + g.step;
    img.src = '/samples/grid.png?v=' + g.version;
    const cap = document.createElement('figcaption');
    cap.textContent = 'step ' + g.step;
    fig.append(img, cap);
    /* newest first: before the first figure of a lower version */
    const later = Array.from(strip.querySelectorAll('figure')).find((f) => Number(f.dataset.v) < g.version);
    strip.insertBefore(fig, later || null);
    $('nostrip').hidden = true;
    const figs = strip.querySelectorAll('figure');
    for (let i = STRIP_MAX; i < figs.length; i++) figs[i].remove();
  }

  function showGrid(version, source) {
    if (version === gridVersion || !version) return;
    gridVersion = version;
    /* fetch the new grid off-screen and swap it in once decoded, so the
     * shown grid never blanks while a slow sampler answers */
    const next = new Image();
    next.onload = () => {
      if (version !== gridVersion) return; /* a newer grid came meanwhile */
      $('grid').src = next.src;
      $('gridsrc').textContent = source ? '(' + source + ')' : '';
    };
    next.src = '/samples/latest.png?v=' + version;
  }

  function connect() {
    const es = new EventSource('/events');
    es.addEventListener('open', () => { $('conn').textContent = 'live'; $('conn').className = 'good'; });
    es.addEventListener('error', () => { $('conn').textContent = 'reconnecting'; $('conn').className = 'bad'; });
    es.addEventListener('state', (e) => {
      const s = JSON.parse(e.data);
      series.clear();
      for (const x of s.series) record(x, x.history);
      received = s.received; dropped = s.dropped;
      if (s.checkpoint) $('ckpt').textContent = 'step ' + s.checkpoint.step;
      showGrid(s.grid_version, '');
      for (const g of (s.grids || []).slice().reverse()) addStrip(g);
      dirty = true;
    });
    es.addEventListener('metric', (e) => { record(JSON.parse(e.data)); received++; });
    es.addEventListener('checkpoint', (e) => {
      const c = JSON.parse(e.data);
      $('ckpt').textContent = 'step ' + c.step;
      received++;
    });
    es.addEventListener('grid', (e) => {
      const g = JSON.parse(e.data);
      showGrid(g.version, g.source ? g.source + ', step ' + g.step : '');
      addStrip(g);
    });
  }

  /* the Sample box: a prompt (free text; a text model is conditioned on
   * it, a class model finds its class in it) or a class, and a seed; the
   * sampler's PNG replaces the shown grid, and its warning (words the
   * model never saw) is shown beside the button */
  function sampleForm() {
    $('sampleform').addEventListener('submit', (e) => {
      e.preventDefault();
      const q = new URLSearchParams({ n: '16', seed: $('sseed').value || '0' });
      const prompt = $('sprompt').value;
      if (prompt) q.set('prompt', prompt);
      if ($('sclass').value) q.set('class', $('sclass').value);
      $('serr').textContent = '';
      $('swarn').textContent = '';
      fetch('/sample?' + q.toString()).then(async (r) => {
        if (!r.ok) { $('serr').textContent = (await r.text()).trim(); return; }
        const w = r.headers.get('X-Gambar-Warning');
        if (w) {
          try { $('swarn').textContent = decodeURIComponent(w); } catch (err) { $('swarn').textContent = w; }
        }
        const url = URL.createObjectURL(await r.blob());
        $('grid').src = url;
        $('gridsrc').textContent = '(sampler, seed ' + q.get('seed') + (prompt ? ', "' + prompt + '"' : '') + ')';
      }).catch((err) => { $('serr').textContent = String(err); });
    });
  }

  makeCharts();
  sampleForm();
  connect();
  setInterval(render, 250);
})();
