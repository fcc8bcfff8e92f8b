// Minimal, dependency-free SVG charts for the benchmark report.
// Every export returns a complete, standalone SVG document as a string.
// Coordinates go through px(), so the output never contains NaN/Infinity.

const W = 640;
const H = 400;
// Okabe–Ito colour-blind-friendly palette (yellow omitted: unreadable on white).
const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000'];
const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ESC[c]);
const px = (v) => (Number.isFinite(v) ? Math.round(v * 10) / 10 : 0);
const color = (i) => PALETTE[i % PALETTE.length];
const clip = (s, n) => (s.length > n ? `${s.slice(0, Math.max(1, n - 1))}…` : s);
const nameOf = (name, i) => clip(String(name ?? `Series ${i + 1}`), 26); // keeps legend ≤ ~210px

/** Compact number with `sig` significant digits: 12.5k, 1.2M, 0.25, 3. */
export function fmt(v, sig = 3) {
  if (!Number.isFinite(v)) return '–';
  const r = Number(v.toPrecision(sig));
  for (const [s, unit] of [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']]) {
    if (Math.abs(r) >= s) return `${Number((r / s).toPrecision(sig))}${unit}`;
  }
  return String(r);
}

/** [min, max] of finite numbers (NaN, NaN when there are none); loop-based, safe for big arrays. */
function extent(values) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : [NaN, NaN];
}

/**
 * Axis covering [lo, hi] with ~5 ticks on a 1 / 2 / 2.5 / 5 × 10^k step.
 * `fixLo` keeps lo as the axis start (e.g. yMin); otherwise it is rounded down to a step.
 */
function niceScale(lo, hi, fixLo = false) {
  if (!Number.isFinite(lo)) lo = 0;
  if (!Number.isFinite(hi) || hi <= lo) hi = lo + (Math.abs(lo) || 1); // empty or all-equal data
  const span = hi - lo;
  const mag = 10 ** Math.floor(Math.log10(span / 5));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= 5 + 1e-9);
  const a = fixLo ? lo : Math.floor(lo / step + 1e-9) * step;
  const b = Math.ceil(hi / step - 1e-9) * step;
  // Enough digits that neighbouring labels differ (e.g. 1.002k vs 1.004k).
  const sig = Math.min(12, Math.max(3, Math.ceil(Math.log10(Math.max(Math.abs(a), Math.abs(b)) / step)) + 2));
  const ticks = [];
  for (let k = Math.ceil(a / step - 1e-9); k * step <= b + step * 1e-9; k++) {
    const v = Number((k * step).toPrecision(12)); // strip float noise (0.30000000000000004)
    ticks.push({ v, label: fmt(v, sig) });
  }
  return { lo: a, hi: b, ticks };
}

/**
 * Shared frame: background, title, grid, ticks, axes, axis labels and legend.
 * xs / ys are { lo, hi, ticks: [{ v, label }] }; body({ x, y, L, R, T, B }) draws the data.
 */
function frame({ title, xLabel, yLabel, xs, ys, names, swatch, xGrid = true, body }) {
  const legendW = names.length ? Math.min(210, 40 + 6.5 * Math.max(...names.map((n) => n.length))) : 0;
  const L = 64, R = W - 16 - legendW, T = 40, B = H - 52;
  const x = (v) => L + ((v - xs.lo) / (xs.hi - xs.lo)) * (R - L);
  const y = (v) => B - ((v - ys.lo) / (ys.hi - ys.lo)) * (B - T);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>`,
  ];
  for (const t of ys.ticks) {
    const ty = px(y(t.v));
    out.push(`<line x1="${L}" x2="${px(R)}" y1="${ty}" y2="${ty}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${L - 6}" y="${px(ty + 4)}" text-anchor="end" fill="#333">${esc(t.label)}</text>`);
  }
  for (const t of xs.ticks) {
    const tx = px(x(t.v));
    if (xGrid) out.push(`<line x1="${tx}" x2="${tx}" y1="${T}" y2="${B}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${tx}" y="${B + 16}" text-anchor="middle" fill="#333">${esc(t.label)}</text>`);
  }
  out.push(`<path d="M${L} ${T}V${B}H${px(R)}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${px((L + R) / 2)}" y="${H - 12}" text-anchor="middle" font-size="13">${esc(xLabel)}</text>`);
  out.push(`<text transform="translate(16 ${(T + B) / 2}) rotate(-90)" text-anchor="middle" font-size="13">${esc(yLabel)}</text>`);
  // Clip data to the plot area (padded so edge markers and labels stay whole).
  out.push(`<clipPath id="plot-area"><rect x="${L - 6}" y="${T - 6}" width="${px(R - L + 12)}" height="${B - T + 12}"/></clipPath>`);
  out.push(`<g clip-path="url(#plot-area)">${body({ x, y, L, R, T, B })}</g>`);
  names.forEach((name, i) => {
    const lx = px(R + 16), ly = T + 8 + i * 18;
    out.push(swatch === 'rect'
      ? `<rect x="${lx}" y="${ly - 6}" width="12" height="12" fill="${color(i)}"/>`
      : `<line x1="${lx}" x2="${px(lx + 18)}" y1="${ly}" y2="${ly}" stroke="${color(i)}" stroke-width="2"/>`);
    out.push(`<text x="${px(lx + 24)}" y="${ly + 4}">${esc(name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

/** Polyline (+ optional circle markers) per series; a lone point always gets a marker; [x, y, lo, hi] points get a range bar. */
function drawLines(curves, x, y, markers) {
  return curves.map(({ pts }, i) => {
    const xy = pts.map(([a, b]) => [px(x(a)), px(y(b))]);
    let s = xy.length > 1
      ? `<polyline points="${xy.map((p) => p.join(',')).join(' ')}" fill="none" stroke="${color(i)}" stroke-width="2" stroke-linejoin="round"/>`
      : '';
    if (markers || xy.length === 1) s += xy.map(([cx, cy]) => `<circle cx="${cx}" cy="${cy}" r="3.5" fill="${color(i)}"/>`).join('');
    // Range bars, nudged apart per series so that overlapping ranges stay readable.
    for (const [a, , lo, hi] of pts) {
      if (!Number.isFinite(lo) || !Number.isFinite(hi)) continue;
      const cx = px(x(a) + (i - (curves.length - 1) / 2) * 3);
      s += `<line x1="${cx}" x2="${cx}" y1="${px(y(lo))}" y2="${px(y(hi))}" stroke="${color(i)}" stroke-opacity="0.6"/>`;
    }
    return s;
  }).join('\n');
}

/** Dashed horizontal reference lines `[{ y, label }]` across the plot area. */
function drawRules(rules, y, L, R) {
  return rules.map(({ y: v, label }) => {
    const ry = px(y(v));
    return `<line x1="${L}" x2="${px(R)}" y1="${ry}" y2="${ry}" stroke="#333" stroke-dasharray="6 4"/><text x="${px(R - 4)}" y="${px(ry - 4)}" text-anchor="end" fill="#333">${esc(label ?? fmt(v))}</text>`;
  }).join('\n');
}

/**
 * Line chart of `series: [{ name, points: [[x, y], ...] }]` (a point [x, y, lo, hi] also draws
 * its range); optional fixed `xTicks`, y-axis start `yMin`, and `rules: [{ y, label }]`,
 * dashed horizontal lines (e.g. parity at 1.0×).
 */
export function lineChart({ title = '', xLabel = '', yLabel = '', series = [], xTicks, yMin = 0, rules = [] }) {
  const curves = series.map((s) => ({
    pts: (s.points ?? []).filter((p) => Number.isFinite(p?.[0]) && Number.isFinite(p?.[1])),
  }));
  const all = curves.flatMap((c) => c.pts);
  const fixed = Array.isArray(xTicks) ? xTicks.filter(Number.isFinite) : [];
  let xs;
  if (fixed.length) {
    // Exactly the caller's ticks; the range also covers any data outside them.
    let [lo, hi] = extent([...fixed, ...all.map((p) => p[0])]);
    if (hi === lo) { lo -= 1; hi += 1; }
    xs = { lo, hi, ticks: fixed.map((v) => ({ v, label: fmt(v) })) };
  } else {
    xs = niceScale(...extent(all.map((p) => p[0])));
  }
  const y0 = Number.isFinite(yMin) ? yMin : 0;
  const ys = niceScale(y0, extent([...all.flatMap((p) => [p[1], p[3]]), ...rules.map((r) => r.y)])[1], true);
  return frame({
    title, xLabel, yLabel, xs, ys, swatch: 'line',
    names: series.map((s, i) => nameOf(s.name, i)),
    body: ({ x, y, L, R }) => drawRules(rules, y, L, R) + drawLines(curves, x, y, true),
  });
}

/** ~200 [log10(1/(1-p)), latency] points from p = 0 up to p = 1 - 1/n (the max sample). */
function spectrum(samples) {
  const a = Float64Array.from(samples ?? []).filter(Number.isFinite).sort(); // typed sort is numeric
  const n = a.length;
  if (!n) return [];
  const top = Math.log10(n);
  const k = n === 1 ? 1 : 200;
  const pts = [];
  for (let i = 0; i < k; i++) {
    const lx = k === 1 ? 0 : (top * i) / (k - 1);
    const p = 1 - 10 ** -lx;
    pts.push([lx, a[Math.min(n - 1, Math.floor(p * n + 1e-9))]]);
  }
  return pts;
}

/** Percentile-spectrum latency chart of `series: [{ name, samples }]` (samples in ms, any order). */
export function latencyChart({ title = '', series = [], xLabel = 'Percentile' }) {
  const curves = series.map((s) => ({ pts: spectrum(s.samples) }));
  const all = curves.flatMap((c) => c.pts);
  const xMax = Math.max(1, extent(all.map((p) => p[0]))[1] || 0);
  // Ticks at 50%, then each "nine": 90%, 99%, 99.9%, ... as far as the data reaches.
  const ticks = [{ v: Math.log10(2), label: '50%' }];
  for (let d = 1; d <= xMax + 1e-9; d++) ticks.push({ v: d, label: d === 1 ? '90%' : `99${d > 2 ? `.${'9'.repeat(d - 2)}` : ''}%` });
  const ys = niceScale(0, extent(all.map((p) => p[1]))[1], true);
  return frame({
    title, xLabel, yLabel: 'Latency (ms)', xs: { lo: 0, hi: xMax, ticks }, ys, swatch: 'line',
    names: series.map((s, i) => nameOf(s.name, i)),
    body: ({ x, y }) => drawLines(curves, x, y, false),
  });
}

/** Grouped bar chart: `groups: [{ label, values: [number|null, ...] }]`, one value per `seriesNames` entry. */
export function barChart({ title = '', yLabel = '', groups = [], seriesNames = [] }) {
  const S = Math.max(1, seriesNames.length);
  const G = Math.max(1, groups.length);
  const [mn, mx] = extent(groups.flatMap((g) => g.values ?? []));
  // 15% headroom beyond the extreme bars so value labels fit inside the plot.
  const ys = niceScale(Math.min(0, mn * 1.15), Math.max(0, mx * 1.15));
  const span = (640 - 80) / G; // rough group width, only used to shorten long labels
  const xs = { lo: 0, hi: G, ticks: groups.map((g, i) => ({ v: i + 0.5, label: clip(String(g.label ?? ''), Math.max(3, Math.floor(span / 8))) })) };
  const body = ({ x, y }) => {
    const groupW = x(1) - x(0);
    const barW = (groupW * 0.8) / S;
    const out = [];
    groups.forEach((g, i) => {
      (g.values ?? []).slice(0, S).forEach((v, j) => {
        if (!Number.isFinite(v)) return; // null → no bar
        const x0 = x(i) + groupW * 0.1 + j * barW;
        const cx = px(x0 + barW / 2), y0 = y(0), y1 = y(v);
        out.push(`<rect x="${px(x0 + 1)}" y="${px(Math.min(y0, y1))}" width="${px(Math.max(1, barW - 2))}" height="${px(Math.abs(y1 - y0))}" fill="${color(j)}"/>`);
        // Value label above (below for negatives); rotated when the bar is too narrow.
        const label = esc(fmt(v));
        if (barW >= 30) out.push(`<text x="${cx}" y="${px(v >= 0 ? y1 - 4 : y1 + 14)}" text-anchor="middle">${label}</text>`);
        else out.push(`<text transform="translate(${px(cx + 4)} ${px(v >= 0 ? y1 - 4 : y1 + 4)}) rotate(-90)" text-anchor="${v >= 0 ? 'start' : 'end'}">${label}</text>`);
      });
    });
    return out.join('\n');
  };
  return frame({
    title, xLabel: '', yLabel, xs, ys, swatch: 'rect', xGrid: false, body,
    names: seriesNames.map((n, i) => nameOf(n, i)),
  });
}
