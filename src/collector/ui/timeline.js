// The collector's timeline page: one volume's write rate, restore points (marks), lag and
// restorable window on one chart; pick an instant (to the second) or a mark; start a
// restore job and follow it; diff two points; the planner's bandwidth-vs-RPO curve.
// Plain browser JS over the JSON API of the same collector; uPlot draws the charts.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const NS = 1e9;

  const state = {
    volume: '',
    info: null, // GET /v1/volumes/:v
    marks: [],
    activity: null, // [{start, end, writtenBytes, uniqueBytes}] in seconds/bytes, or null when unavailable
    lag: null, // {label, points: [[sec, lagSeconds]]}: the planner's simulated shipping lag, or null
    restoreDir: null,
    pickedSec: null, // the picked instant, whole seconds since the epoch
    pickedMark: '', // a mark name, or '' for the instant
    chart: null,
    planChart: null,
  };

  // ---- formatting ------------------------------------------------------------------
  const iso = (sec) => new Date(sec * 1000).toISOString().replace('.000Z', 'Z');
  const isoNs = (ns) => new Date(Number(BigInt(ns) / 1000000n)).toISOString().replace(/\.\d{3}Z$/, (m) => (m === '.000Z' ? 'Z' : m));
  const nsToSec = (ns) => Number(BigInt(ns) / 1000000n) / 1000;
  function bytes(n) {
    n = Number(n);
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (Math.abs(n) >= 1024 && i < u.length - 1) n /= 1024, i++;
    return `${i === 0 ? n : n.toFixed(n >= 100 ? 0 : 1)} ${u[i]}`;
  }
  function duration(sec) {
    sec = Math.round(sec);
    if (sec < 60) return `${sec} s`;
    const two = (a, ua, b, ub) => (b === 0 ? `${a} ${ua}` : `${a} ${ua} ${b} ${ub}`);
    if (sec < 3600) return two(Math.floor(sec / 60), 'min', sec % 60, 's');
    if (sec < 86400) return two(Math.floor(sec / 3600), 'h', Math.floor((sec % 3600) / 60), 'min');
    return two(Math.floor(sec / 86400), 'd', Math.floor((sec % 86400) / 3600), 'h');
  }
  const timeOfDay = (sec) => iso(sec).slice(11, 19);

  // ---- API -------------------------------------------------------------------------
  async function api(method, path, body) {
    const init = { method, headers: {} };
    if (body !== undefined) {
      init.headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const r = await fetch(path, init);
    const text = await r.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
    if (!r.ok) {
      const e = new Error(json && json.message ? json.message : `${method} ${path}: HTTP ${r.status}`);
      e.code = json && json.code;
      e.status = r.status;
      throw e;
    }
    return json;
  }
  const errText = (e) => (e.code ? `${e.code}: ${e.message}` : e.message);
  const vpath = (suffix) => `/v1/volumes/${encodeURIComponent(state.volume)}${suffix}`;

  function setStatus(el, text, kind) {
    el.textContent = text;
    el.className = kind || '';
  }

  // ---- window and picking ----------------------------------------------------------
  function windowSec() {
    const w = state.info.window;
    // A point from the first whole second inside the window up to the latest durable state.
    return { lo: Math.ceil(nsToSec(w.earliest)), hi: Math.max(Math.ceil(nsToSec(w.earliest)), Math.ceil(nsToSec(w.latest))), earliest: nsToSec(w.earliest), latest: nsToSec(w.latest) };
  }
  const clampSec = (s) => { const w = windowSec(); return Math.min(w.hi, Math.max(w.lo, Math.round(s))); };

  /** The point the restore and the "picked" diff end use: a mark, or the instant. */
  function pickedPoint() {
    return state.pickedMark ? `mark:${state.pickedMark}` : iso(state.pickedSec);
  }

  function pickInstant(sec, fromMark) {
    if (!state.info) return;
    state.pickedSec = clampSec(sec);
    if (!fromMark) {
      state.pickedMark = '';
      $('mark').value = '';
    }
    $('instant').value = iso(state.pickedSec);
    $('instant').removeAttribute('aria-invalid');
    $('slider').value = String(state.pickedSec);
    $('picked').textContent = state.pickedMark
      ? `Picked: restore point “${state.pickedMark}” (${isoNs(state.marks.find((m) => m.name === state.pickedMark).time)}).`
      : `Picked: ${iso(state.pickedSec)} — the volume as it was at this second.`;
    const defaultName = `${state.volume}-${state.pickedMark ? state.pickedMark : iso(state.pickedSec).replace(/[:]/g, '')}.img`;
    if (state.restoreDir && !$('restore-path').dataset.edited) $('restore-path').value = `${state.restoreDir.replace(/\/$/, '')}/${defaultName}`;
    fillDiffSelects();
    if (state.chart) state.chart.redraw(false, false);
  }

  function pickMark(name) {
    const m = state.marks.find((x) => x.name === name);
    if (!m) return pickInstant(state.pickedSec ?? windowSec().hi);
    state.pickedMark = name;
    pickInstant(Math.ceil(nsToSec(m.time)), true);
  }

  // ---- loading -----------------------------------------------------------------------
  async function loadVolumes() {
    const { volumes } = await api('GET', '/v1/volumes');
    const sel = $('volume');
    const keep = state.volume || new URLSearchParams(location.search).get('volume') || '';
    sel.replaceChildren(...volumes.map((v) => new Option(v.name, v.name)));
    if (volumes.length === 0) {
      setStatus($('status'), 'This collector holds no volumes yet.');
      return;
    }
    state.volume = volumes.some((v) => v.name === keep) ? keep : volumes[0].name;
    sel.value = state.volume;
    await loadVolume();
  }

  async function loadVolume() {
    setStatus($('status'), `Loading ${state.volume}…`);
    const [info, restores] = await Promise.all([api('GET', vpath('')), api('GET', '/v1/restores').catch(() => ({ restoreDir: null }))]);
    state.info = info;
    state.marks = info.marks || [];
    state.restoreDir = restores.restoreDir;
    state.activity = await loadActivity();
    renderSummary();
    renderMarks();
    const w = windowSec();
    $('slider').min = String(w.lo);
    $('slider').max = String(w.hi);
    if (state.pickedMark && state.marks.some((m) => m.name === state.pickedMark)) pickMark(state.pickedMark);
    else pickInstant(state.pickedSec ?? w.hi);
    $('restore-start').disabled = !state.restoreDir;
    if (!state.restoreDir) setStatus($('restore-status'), 'Restore jobs are off on this collector: start it with --restore-dir DIR.', 'error');
    await loadPlan();
    renderSummary();
    renderChart();
    setStatus($('status'), `Updated ${timeOfDay(Date.now() / 1000)} UTC`);
  }

  /**
   * The write-rate series (GET /v1/volumes/:v/activity, the planner's per-interval
   * counts). Null when this collector does not serve it: the chart still shows the window,
   * the marks and the picked instant.
   */
  async function loadActivity() {
    const w = state.info.window;
    try {
      const r = await api('GET', vpath(`/activity?from=${encodeURIComponent(isoNs(w.earliest))}&to=${encodeURIComponent('now')}`));
      const items = Array.isArray(r) ? r : (r.intervals || r.activity || r.items || []);
      return items.map((x) => ({ start: nsToSec(x.start), end: nsToSec(x.end), writtenBytes: Number(x.writtenBytes), uniqueBytes: Number(x.uniqueBytes) }));
    } catch (e) {
      if (e.status === 404 && e.code !== 'REWIND_ERR_NOT_FOUND') return null;
      if (e.status === 404 && /no route/.test(e.message)) return null;
      throw e;
    }
  }

  function renderSummary() {
    const i = state.info;
    const w = windowSec();
    $('f-window').textContent = `${iso(Math.floor(w.earliest))} → ${timeOfDay(Math.floor(w.latest))} (${duration(w.latest - w.earliest)})`;
    $('f-latest').textContent = `${iso(Math.floor(w.latest))} · seq ${i.durableSeq}`;
    $('f-lag').textContent = state.lag ? `max ${duration(Math.max(0, ...state.lag.points.map((p) => p[1])))} ${state.lag.label}` : 'no planner';
    $('f-marks').textContent = String(state.marks.length);
    $('f-size').textContent = bytes(i.size);
  }

  function renderMarks() {
    const sel = $('mark');
    sel.replaceChildren(new Option('— the instant above —', ''), ...state.marks.map((m) => new Option(`${m.name} · ${isoNs(m.time)}`, m.name)));
    sel.value = state.pickedMark;
  }

  function fillDiffSelects() {
    const opts = () => [new Option(`picked point (${state.pickedMark ? state.pickedMark : iso(state.pickedSec)})`, 'picked'), ...state.marks.map((m) => new Option(`${m.name} · ${isoNs(m.time)}`, `mark:${m.name}`))];
    for (const [id, fallback] of [['diff-from', 0], ['diff-to', -1]]) {
      const sel = $(id);
      const was = sel.value;
      sel.replaceChildren(...opts());
      const values = [...sel.options].map((o) => o.value);
      if (values.includes(was)) sel.value = was;
      else if (state.marks.length >= 2) sel.value = `mark:${state.marks.at(fallback).name}`;
      else sel.value = 'picked';
    }
  }

  // ---- the timeline chart ------------------------------------------------------------
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

  function chartData() {
    const a = state.activity || [];
    const w = windowSec();
    const xs = [];
    const written = [];
    const unique = [];
    const lag = [];
    // The simulated lag is given at each interval's end: the next interval's start.
    const lagAt = new Map((state.lag ? state.lag.points : []).map(([t, l]) => [Math.round(t * 1000), l]));
    for (const it of a) {
      const secs = Math.max(it.end - it.start, 1e-3);
      xs.push(it.start);
      written.push(it.writtenBytes / secs);
      unique.push(it.uniqueBytes / secs);
      lag.push(lagAt.get(Math.round(it.start * 1000)) ?? (xs.length === 1 && state.lag ? 0 : null));
    }
    if (a.length > 0) {
      // Close the last step at its interval's end.
      xs.push(a[a.length - 1].end);
      written.push(written[written.length - 1]);
      unique.push(unique[unique.length - 1]);
      lag.push(lagAt.get(Math.round(a[a.length - 1].end * 1000)) ?? null);
    }
    const lo = Math.min(w.earliest, xs[0] ?? w.earliest);
    const hi = Math.max(w.latest, xs[xs.length - 1] ?? w.latest, lo + 1);
    if (xs.length === 0) {
      xs.push(lo, hi);
      written.push(null, null);
      unique.push(null, null);
      lag.push(null, null);
    }
    return { data: [xs, written, unique, lag], lo, hi };
  }

  const X_INCRS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];

  /** Marks, the restorable window and the picked instant, drawn over the series. */
  function drawOverlay(u) {
    const ctx = u.ctx;
    const { left, top, width, height } = u.bbox;
    const px = (sec) => u.valToPos(sec, 'x', true);
    const w = windowSec();
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    // Outside the window: shaded.
    ctx.fillStyle = css('--outside');
    const wl = px(w.earliest);
    const wr = px(w.latest);
    if (wl > left) ctx.fillRect(left, top, wl - left, height);
    if (wr < left + width) ctx.fillRect(wr, top, left + width - wr, height);
    // Window edges.
    ctx.strokeStyle = css('--muted');
    ctx.lineWidth = 1;
    for (const x of [wl, wr]) { ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke(); }
    // Marks: dashed verticals with their names.
    const dpr = devicePixelRatio || 1;
    ctx.font = `${12 * dpr}px system-ui, sans-serif`;
    ctx.setLineDash([5 * dpr, 4 * dpr]);
    ctx.strokeStyle = css('--mark');
    ctx.fillStyle = css('--mark');
    ctx.lineWidth = 2 * dpr;
    state.marks.forEach((m, k) => {
      const x = px(nsToSec(m.time));
      ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
      // Names near the right edge go to the left of their line, so none is cut off.
      const tw = ctx.measureText(m.name).width;
      const tx = x + 4 * dpr + tw > left + width ? x - 4 * dpr - tw : x + 4 * dpr;
      ctx.fillText(m.name, tx, top + (14 + (k % 3) * 14) * dpr);
    });
    ctx.setLineDash([]);
    // The picked instant.
    if (state.pickedSec !== null) {
      const x = px(state.pickedSec);
      ctx.strokeStyle = css('--picked');
      ctx.lineWidth = 2 * dpr;
      ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
      ctx.fillStyle = css('--picked');
      ctx.beginPath(); ctx.moveTo(x - 6 * dpr, top); ctx.lineTo(x + 6 * dpr, top); ctx.lineTo(x, top + 9 * dpr); ctx.closePath(); ctx.fill();
    }
    ctx.restore();
  }

  function renderChart() {
    const el = $('chart');
    const { data, lo, hi } = chartData();
    const has = state.activity !== null;
    $('chart-note').textContent = has
      ? (state.activity.length === 0 ? 'No writes recorded in this window.' : `${state.activity.length} interval${state.activity.length === 1 ? '' : 's'} of write activity.`)
      : 'Write rate: this collector does not serve GET /v1/volumes/:v/activity yet; marks, window and picked instant are shown.';
    const maxRate = Math.max(1, ...data[1].filter((v) => v !== null));
    const maxLag = Math.max(1, ...data[3].filter((v) => v !== null));
    const stepped = uPlot.paths.stepped({ align: 1 });
    const opts = {
      width: Math.max(320, el.clientWidth || 900),
      height: 300,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
      scales: { x: { time: true, range: () => [lo - (hi - lo) * 0.02, hi + (hi - lo) * 0.02] }, rate: { range: () => [0, maxRate * 1.15] }, lag: { range: () => [0, maxLag * 1.15] } },
      series: [
        { value: (u, v) => (v === null ? '—' : iso(Math.floor(v))) },
        { label: 'written', scale: 'rate', stroke: css('--written'), fill: 'rgba(47,111,179,0.18)', width: 2, paths: stepped, value: (u, v) => (v === null ? '—' : `${bytes(v)}/s`) },
        { label: 'unique', scale: 'rate', stroke: css('--unique'), width: 2, paths: stepped, value: (u, v) => (v === null ? '—' : `${bytes(v)}/s`) },
        { label: state.lag ? `simulated lag ${state.lag.label}` : 'lag', scale: 'lag', stroke: css('--lag'), width: 2, dash: [6, 3], spanGaps: true, points: { show: true, size: 5 }, value: (u, v) => (v === null ? '—' : duration(v)) },
      ],
      axes: [
        // Whole seconds at the finest (points are picked to the second), UTC, the date under
        // the first tick of each day.
        { stroke: css('--fg'), size: 46, incrs: X_INCRS, values: (u, ticks) => ticks.map((t, k) => (k === 0 || iso(t).slice(0, 10) !== iso(ticks[k - 1]).slice(0, 10) ? `${timeOfDay(t)}\n${iso(t).slice(0, 10)}` : timeOfDay(t))) },
        { scale: 'rate', stroke: css('--fg'), size: 86, values: (u, ticks) => ticks.map((t) => `${bytes(t)}/s`) },
        { scale: 'lag', side: 1, stroke: css('--lag'), grid: { show: false }, values: (u, ticks) => ticks.map((t) => `${t} s`) },
      ],
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      hooks: { draw: [drawOverlay] },
    };
    if (state.chart) state.chart.destroy();
    el.replaceChildren();
    state.chart = new uPlot(opts, data, el);
    state.chart.over.addEventListener('click', (e) => {
      const sec = state.chart.posToVal(e.offsetX, 'x');
      pickInstant(sec);
      el.focus();
    });
  }

  // ---- the planner -----------------------------------------------------------------
  /** The RPOs the bandwidth-vs-RPO curve is drawn at (seconds). */
  const CURVE_RPOS = [1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];

  /**
   * GET /v1/volumes/:v/plan over the whole retained history: one call for the target RPO
   * (and the link, whose simulated lag goes on the timeline), one per point of the curve —
   * the API answers one RPO per call.
   */
  async function loadPlan() {
    const box = $('plan');
    const el = $('plan-chart');
    const note = $('plan-note');
    const basis = $('plan-basis').value;
    const rpo = $('plan-rpo').value.trim() || '30s';
    const link = $('plan-link').value.trim();
    box.dataset.state = 'running';
    const q = (extra) => vpath(`/plan?basis=${encodeURIComponent(basis)}${extra}`);
    let main;
    try {
      main = await api('GET', q(`&rpo=${encodeURIComponent(rpo)}${link ? `&bandwidth=${encodeURIComponent(link)}` : ''}`));
    } catch (e) {
      if (state.planChart) state.planChart.destroy(), (state.planChart = null);
      el.replaceChildren();
      $('plan-facts').hidden = true;
      state.lag = null;
      box.dataset.state = e.status === 404 ? 'unavailable' : 'error';
      setStatus(note, e.status === 404 && /no route/.test(e.message) ? 'The planner is not available on this collector (GET /v1/volumes/:v/plan).' : `Planner: ${errText(e)}`, e.status === 404 ? '' : 'error');
      return;
    }
    const curve = await Promise.all(CURVE_RPOS.map((r) => api('GET', q(`&rpo=${r}s`)).then((p) => [r, p.rpo.recommendedBandwidth], () => [r, null])));
    // The lag on the timeline: under the link given, else under the recommended bandwidth.
    const lagSource = main.bandwidth || main.rpo;
    state.lag = lagSource ? { label: main.bandwidth ? `at ${bytes(main.bandwidth.bandwidth)}/s` : `at ${bytes(main.rpo.recommendedBandwidth)}/s (recommended)`, points: lagSource.curve.map((c) => [nsToSec(c.t), c.lagSeconds]) } : null;
    $('p-needed').textContent = `${bytes(main.rpo.recommendedBandwidth)}/s for ${duration(main.rpo.targetSeconds)}${main.links ? ` (${main.links.count} links)` : ''}`;
    const achieved = main.bandwidth && main.bandwidth.achievedRpoSeconds;
    $('p-link').textContent = main.bandwidth ? `RPO ${achieved < 1 ? 'under 1 s' : duration(achieved)}${main.bandwidth.keepsUp ? '' : ' — falls behind'}` : 'no link given';
    const r = main.rates[basis];
    $('p-rates').textContent = `${bytes(r.peak)}/s · ${bytes(r.p95)}/s · ${bytes(r.mean)}/s`;
    $('p-savings').textContent = `${bytes(main.bytes.coalescingSavings)} (${(100 * main.bytes.savingsRatio).toFixed(0)} %)`;
    $('plan-facts').hidden = false;
    const pts = curve.filter((c) => c[1] !== null);
    const warn = main.warnings && main.warnings.length ? ` ${main.warnings.join(' ')}` : '';
    setStatus(note, `Bandwidth that keeps the simulated shipping lag under each RPO, over ${duration(main.window.seconds)} of recorded writes (${main.window.intervals} intervals of ${duration(Number(main.window.intervalNs) / NS)}).${warn}`);
    const target = main.rpo.targetSeconds;
    // A link far above every need would flatten the curve to the axis: then it is only named.
    const curveMax = Math.max(0, ...pts.map((p) => p[1]));
    const linkShown = Boolean(main.bandwidth) && main.bandwidth.bandwidth <= 3 * curveMax;
    const opts = {
      width: Math.max(320, el.clientWidth || 900), height: 240,
      scales: { x: { time: false, distr: 3, log: 10 }, y: { range: (u, lo, hi) => [0, Math.max(hi, linkShown ? main.bandwidth.bandwidth : 0) * 1.1 || 1] } },
      series: [
        { label: 'target RPO', value: (u, v) => (v === null ? '—' : duration(v)) },
        { label: 'bandwidth needed', stroke: css('--written'), width: 2, points: { show: true, size: 6 }, value: (u, v) => (v === null ? '—' : `${bytes(v)}/s`) },
      ],
      // Ticks at the RPOs planned for, not at the log scale's decades and their minors.
      axes: [{ splits: () => pts.map((p) => p[0]), values: (u, t) => t.map((x) => (x === null ? '' : duration(x))) }, { size: 86, values: (u, t) => t.map((x) => `${bytes(x)}/s`) }],
      hooks: {
        draw: [(u) => {
          // The target RPO (vertical) and the link given (horizontal).
          const ctx = u.ctx;
          const { left, top, width, height } = u.bbox;
          const dpr = devicePixelRatio || 1;
          ctx.save();
          ctx.lineWidth = 2 * dpr;
          ctx.setLineDash([5 * dpr, 4 * dpr]);
          ctx.strokeStyle = css('--picked');
          const x = u.valToPos(target, 'x', true);
          if (x >= left && x <= left + width) { ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke(); }
          if (linkShown) {
            ctx.strokeStyle = css('--lag');
            const y = u.valToPos(main.bandwidth.bandwidth, 'y', true);
            ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + width, y); ctx.stroke();
          }
          ctx.restore();
        }],
      },
    };
    if (state.planChart) state.planChart.destroy();
    el.replaceChildren();
    state.planChart = new uPlot(opts, [pts.map((p) => p[0]), pts.map((p) => p[1])], el);
    box.dataset.state = 'done';
  }

  // ---- restore -----------------------------------------------------------------------
  async function startRestore() {
    const box = $('restore');
    const status = $('restore-status');
    const btn = $('restore-start');
    const at = pickedPoint();
    btn.disabled = true;
    $('restore-result').hidden = true;
    $('restore-progress').value = 0;
    box.dataset.state = 'running';
    setStatus(status, `Starting a restore of ${at}…`);
    try {
      const body = state.pickedMark ? { mark: state.pickedMark, path: $('restore-path').value } : { at, path: $('restore-path').value };
      let job = await api('POST', vpath('/restores'), body);
      while (job.state === 'running') {
        const pct = Number(job.bytesTotal) > 0 ? (100 * Number(job.bytesDone)) / Number(job.bytesTotal) : 0;
        $('restore-progress').value = pct;
        setStatus(status, `Restoring ${at}: ${bytes(job.bytesDone)} of ${bytes(job.bytesTotal)} (${pct.toFixed(0)} %)`);
        await new Promise((r) => setTimeout(r, 200));
        job = await api('GET', `/v1/restores/${encodeURIComponent(job.id)}`);
      }
      box.dataset.state = job.state;
      if (job.state === 'done') {
        $('restore-progress').value = 100;
        setStatus(status, `Restore done: ${bytes(job.bytesTotal)} written.`, 'ok');
        $('restore-file').textContent = job.path;
        $('restore-as-of').textContent = `${isoNs(job.time)} (seq ${job.seq}${job.mark ? `, mark “${job.mark}”` : ''})`;
        $('restore-sha').textContent = job.sha256;
        $('restore-result').hidden = false;
        $('restore-path').dataset.edited = '';
        pickInstant(state.pickedSec, Boolean(state.pickedMark)); // a fresh default file name
      } else {
        setStatus(status, `Restore ${job.state}: ${job.error ? `${job.error.code}: ${job.error.message}` : ''}`, 'error');
      }
    } catch (e) {
      box.dataset.state = 'error';
      setStatus(status, errText(e), 'error');
    } finally {
      btn.disabled = !state.restoreDir;
    }
  }

  // ---- diff --------------------------------------------------------------------------
  async function showDiff() {
    const box = $('diff');
    const status = $('diff-status');
    const pt = (v) => (v === 'picked' ? pickedPoint() : v);
    const from = pt($('diff-from').value);
    const to = pt($('diff-to').value);
    box.dataset.state = 'running';
    $('diff-result').hidden = true;
    $('diff-start').disabled = true;
    setStatus(status, `Comparing ${from} with ${to}…`);
    try {
      const d = await api('GET', vpath(`/diff?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`));
      const n = d.extents.length;
      $('diff-summary').textContent = `${bytes(d.changedBytes)} changed in ${n} extent${n === 1 ? '' : 's'} (${d.changedBytes} bytes)`;
      $('diff-summary').dataset.changedBytes = d.changedBytes;
      $('diff-summary').dataset.extents = String(n);
      drawDiffMap(d.extents);
      $('diff-extents').tBodies[0].replaceChildren(...d.extents.slice(0, 20).map((e) => {
        const tr = document.createElement('tr');
        for (const t of [`${e.offset} (${bytes(e.offset)})`, bytes(e.length), e.kind]) {
          const td = document.createElement('td');
          td.textContent = t;
          tr.append(td);
        }
        return tr;
      }));
      $('diff-result').hidden = false;
      box.dataset.state = 'done';
      setStatus(status, `Diff ${from} → ${to}`, 'ok');
    } catch (e) {
      box.dataset.state = 'error';
      setStatus(status, errText(e), 'error');
    } finally {
      $('diff-start').disabled = false;
    }
  }

  function drawDiffMap(extents) {
    const c = $('diff-map');
    const dpr = devicePixelRatio || 1;
    c.width = Math.round((c.clientWidth || 800) * dpr);
    c.height = Math.round(28 * dpr);
    const ctx = c.getContext('2d');
    ctx.clearRect(0, 0, c.width, c.height);
    const size = Number(state.info.size);
    for (const e of extents) {
      const x = (Number(e.offset) / size) * c.width;
      const w = Math.max(1, (Number(e.length) / size) * c.width);
      ctx.fillStyle = e.kind === 'zero' ? css('--muted') : css('--written');
      ctx.fillRect(x, 0, w, c.height);
    }
  }

  // ---- keyboard and controls -------------------------------------------------------------
  function nudge(e) {
    if (state.pickedSec === null) return;
    const w = windowSec();
    const step = e.shiftKey ? 60 : 1;
    const moves = { ArrowLeft: -step, ArrowRight: step, ArrowDown: -step, ArrowUp: step };
    if (e.key in moves) pickInstant(state.pickedSec + moves[e.key]);
    else if (e.key === 'Home') pickInstant(w.lo);
    else if (e.key === 'End') pickInstant(w.hi);
    else return;
    e.preventDefault();
  }

  function wire() {
    $('chart').addEventListener('keydown', nudge);
    $('minus').addEventListener('click', () => pickInstant(state.pickedSec - 1));
    $('plus').addEventListener('click', () => pickInstant(state.pickedSec + 1));
    // The range input moves by its step (one second) on arrow keys by itself.
    $('slider').addEventListener('input', () => pickInstant(Number($('slider').value)));
    $('instant').addEventListener('change', () => {
      const t = Date.parse($('instant').value.trim());
      if (Number.isNaN(t)) {
        $('instant').setAttribute('aria-invalid', 'true');
        $('picked').textContent = `“${$('instant').value}” is not an instant: write it as ${iso(state.pickedSec)}.`;
        return;
      }
      pickInstant(Math.floor(t / 1000));
    });
    $('instant').addEventListener('keydown', (e) => {
      if (e.key === 'ArrowUp' || e.key === 'ArrowDown') {
        pickInstant(state.pickedSec + (e.key === 'ArrowUp' ? 1 : -1) * (e.shiftKey ? 60 : 1));
        e.preventDefault();
      }
    });
    $('mark').addEventListener('change', () => pickMark($('mark').value));
    $('restore-path').addEventListener('input', () => ($('restore-path').dataset.edited = '1'));
    $('restore-start').addEventListener('click', () => void startRestore());
    $('diff-start').addEventListener('click', () => void showDiff());
    $('plan-start').addEventListener('click', () => void loadPlan().then(() => { renderSummary(); renderChart(); }).catch(fail));
    for (const id of ['plan-rpo', 'plan-link']) $(id).addEventListener('keydown', (e) => { if (e.key === 'Enter') $('plan-start').click(); });
    $('refresh').addEventListener('click', () => void loadVolume().catch(fail));
    $('volume').addEventListener('change', () => {
      state.volume = $('volume').value;
      state.pickedSec = null;
      state.pickedMark = '';
      void loadVolume().catch(fail);
    });
    addEventListener('resize', () => {
      if (state.chart) state.chart.setSize({ width: Math.max(320, $('chart').clientWidth), height: 300 });
      if (state.planChart) state.planChart.setSize({ width: Math.max(320, $('plan-chart').clientWidth), height: 240 });
    });
  }

  function fail(e) {
    setStatus($('status'), errText(e), 'error');
  }

  wire();
  loadVolumes().then(() => (document.body.dataset.ready = 'true'), (e) => { fail(e); document.body.dataset.ready = 'error'; });
})();
