// Small charts drawn as inline SVG (and one canvas for large grids): no chart library to fetch.

const NS = 'http://www.w3.org/2000/svg';

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) if (value !== undefined && value !== null) el.setAttribute(key, value);
  for (const child of children.flat()) if (child) el.append(typeof child === 'string' ? document.createTextNode(child) : child);
  return el;
}

// One or more series (`values`, or [[…], […]] with `classes` for each) on a shared scale.
export function sparkline(values, { width = 100, height = 22, cls = '', classes = [], title } = {}) {
  const series = Array.isArray(values[0]) ? values : [values];
  const root = svg('svg', { class: `spark ${cls}`, width, height, viewBox: `0 0 ${width} ${height}` });
  if (title) root.append(svg('title', {}, title));
  const max = Math.max(...series.flat(), 1e-9);
  series.forEach((list, n) => {
    if (!list.length) return;
    if (list.length === 1) {
      root.append(svg('circle', { cx: width - 3, cy: height - 2 - (list[0] / max) * (height - 4), r: 2.5, class: `dot ${classes[n] || ''}` }));
      return;
    }
    const step = width / (list.length - 1);
    const points = list.map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`);
    root.append(svg('polyline', { points: points.join(' '), class: classes[n] || '' }));
  });
  return root;
}

// A share (0–1) as a small bar with its text beside it: CPU or memory of an instance.
export function meter(share, text, cls = '') {
  const width = 60;
  const filled = Math.max(0, Math.min(1, Number(share) || 0)) * width;
  const root = svg('svg', { class: `meter ${cls}`, width, height: 10, viewBox: `0 0 ${width} 10` },
    svg('rect', { x: 0, y: 0, width, height: 10, class: 'track' }),
    svg('rect', { x: 0, y: 0, width: filled, height: 10, class: share > 0.9 ? 'fill hot' : 'fill' }));
  const out = document.createElement('span');
  out.className = 'meter-cell';
  out.append(root, ` ${text}`);
  return out;
}

// Horizontal bars: items [{label, value, color}].
export function bars(items, { width = 480, format = String } = {}) {
  const row = 22;
  const labelWidth = 170;
  const height = items.length * row + 4;
  const max = Math.max(...items.map((i) => i.value), 1e-9);
  const root = svg('svg', { class: 'bars', viewBox: `0 0 ${width} ${height}`, width: '100%', height, role: 'img', preserveAspectRatio: 'xMinYMin meet' });
  items.forEach((item, i) => {
    const y = i * row + 2;
    const w = ((width - labelWidth - 80) * item.value) / max;
    root.append(
      svg('text', { x: 0, y: y + 14 }, item.label),
      svg('rect', { x: labelWidth, y: y + 3, width: Math.max(w, 1), height: row - 8, fill: item.color || '#2563eb', rx: 2 }),
      svg('text', { x: labelWidth + w + 6, y: y + 14 }, format(item.value)),
    );
  });
  return root;
}

// Stacked columns over time: `starts` (ms, one per bucket) and `layers` [{label, values, color}],
// each bucket's layers stacked bottom-up in order. Every column part is a <rect data-series=label
// data-bucket=n> with its amount in a <title>; the axis shows the first, middle and last bucket.
export function stacked(starts, layers, { width = 640, height = 180, format = String, span = '' } = {}) {
  const root = svg('svg', { class: 'stacked', viewBox: `0 0 ${width} ${height}`, width: '100%', height, role: 'img', preserveAspectRatio: 'xMinYMin meet' });
  const top = 14; const bottom = 18; const left = 4;
  const totals = starts.map((_, n) => layers.reduce((sum, l) => sum + (l.values[n] || 0), 0));
  const max = Math.max(...totals, 0);
  if (!starts.length || max <= 0) {
    root.append(svg('text', { x: 8, y: 20 }, 'nothing charged in this window yet'));
    return root;
  }
  const step = (width - left) / starts.length;
  const scale = (height - top - bottom) / max;
  starts.forEach((start, n) => {
    let y = height - bottom;
    for (const layer of layers) {
      const value = layer.values[n] || 0;
      if (value <= 0) continue;
      const h = Math.max(value * scale, 0.5);
      y -= h;
      root.append(svg('rect', { x: left + n * step, y, width: Math.max(step - (step > 4 ? 1 : 0), 0.5), height: h, fill: layer.color, 'data-series': layer.label, 'data-bucket': n },
        svg('title', {}, `${new Date(start).toLocaleString()}${span}: ${layer.label} ${format(value)}`)));
    }
  });
  const when = (n) => new Date(starts[n]).toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  const last = starts.length - 1;
  root.append(
    svg('line', { class: 'axis', x1: left, x2: width, y1: height - bottom, y2: height - bottom }),
    svg('text', { x: left, y: 10 }, `${format(max)} per bucket at most`),
    svg('text', { x: left, y: height - 4 }, when(0)),
    last > 1 ? svg('text', { x: left + (last / 2 + 0.5) * step, y: height - 4, 'text-anchor': 'middle' }, when(Math.floor(last / 2))) : null,
    last > 0 ? svg('text', { x: width, y: height - 4, 'text-anchor': 'end' }, when(last)) : null,
  );
  return root;
}

// A histogram of values (ms) in `bins` buckets.
export function histogram(values, { bins = 20, width = 480, height = 140 } = {}) {
  const root = svg('svg', { class: 'histogram', viewBox: `0 0 ${width} ${height}`, width: '100%', height, role: 'img', preserveAspectRatio: 'xMinYMin meet' });
  if (!values.length) {
    root.append(svg('text', { x: 8, y: 20 }, 'no invocations seen yet'));
    return root;
  }
  const min = Math.min(...values);
  const max = Math.max(...values);
  const span = max - min || 1;
  const counts = new Array(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.floor(((v - min) / span) * bins))] += 1;
  const top = Math.max(...counts);
  const barWidth = (width - 10) / bins;
  counts.forEach((count, i) => {
    const h = ((height - 30) * count) / top;
    root.append(svg('rect', { x: 5 + i * barWidth, y: height - 18 - h, width: barWidth - 2, height: h, fill: '#2563eb' },
      svg('title', {}, `${count} between ${(min + (span * i) / bins).toFixed(2)} and ${(min + (span * (i + 1)) / bins).toFixed(2)} ms`)));
  });
  root.append(
    svg('text', { x: 5, y: height - 4 }, `${min.toFixed(2)} ms`),
    svg('text', { x: width - 5, y: height - 4, 'text-anchor': 'end' }, `${max.toFixed(2)} ms`),
  );
  return root;
}

// Events on a time axis: items [{t (ms), label, color, lane}].
export function timeline(items, { width = 900, lanes = [] } = {}) {
  const laneHeight = 26;
  const left = 130;
  const height = Math.max(lanes.length, 1) * laneHeight + 28;
  const root = svg('svg', { class: 'timeline', viewBox: `0 0 ${width} ${height}`, width: '100%', height, role: 'img', preserveAspectRatio: 'xMinYMin meet' });
  if (!items.length) {
    root.append(svg('text', { x: 8, y: 18 }, 'nothing happened yet'));
    return root;
  }
  const times = items.map((i) => i.t);
  const from = Math.min(...times);
  const to = Math.max(...times, from + 1000);
  const x = (t) => left + ((width - left - 20) * (t - from)) / (to - from);
  lanes.forEach((lane, i) => {
    const y = i * laneHeight + 14;
    root.append(svg('text', { x: 0, y: y + 4 }, lane), svg('line', { class: 'axis', x1: left, x2: width - 10, y1: y, y2: y }));
  });
  for (const item of items) {
    const y = Math.max(lanes.indexOf(item.lane), 0) * laneHeight + 14;
    root.append(svg('circle', { cx: x(item.t), cy: y, r: 5, fill: item.color || '#2563eb', class: item.cls },
      svg('title', {}, `${new Date(item.t).toLocaleTimeString()} ${item.label}`)));
  }
  root.append(
    svg('text', { x: left, y: height - 4 }, new Date(from).toLocaleTimeString()),
    svg('text', { x: width - 10, y: height - 4, 'text-anchor': 'end' }, new Date(to).toLocaleTimeString()),
  );
  return root;
}

export const GRID_COLORS = {
  '.': '#f3f4f6', S: '#e5e7eb', P: '#d1d5db', R: '#fde68a', T: '#93c5fd', U: '#2563eb', D: '#16a34a', F: '#dc2626', '?': '#a855f7',
};

// An array job's children, one cell each, drawn on a canvas (10,000 cells stay cheap).
export function drawGrid(canvas, statuses) {
  const n = statuses.length;
  const columns = Math.max(1, Math.min(100, Math.ceil(Math.sqrt(n * 4))));
  const cell = n > 2500 ? 6 : n > 400 ? 10 : 16;
  const rows = Math.ceil(n / columns);
  canvas.width = columns * cell;
  canvas.height = Math.max(rows * cell, cell);
  canvas.style.maxWidth = `${columns * cell}px`;
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  for (let i = 0; i < n; i++) {
    ctx.fillStyle = GRID_COLORS[statuses[i]] || GRID_COLORS['?'];
    ctx.fillRect((i % columns) * cell, Math.floor(i / columns) * cell, cell - 1, cell - 1);
  }
  return { columns, cell };
}

// A directed graph in layers (breadth first from `roots`): nodes {id: {label, sub, status}},
// edges [[from, to]]; each box is a <g data-node=id data-status=…>.
export function dag(nodes, edges, roots) {
  const out = {};
  for (const [a, b] of edges) if (a in nodes && b in nodes) (out[a] = out[a] || []).push(b);
  const layer = {};
  const order = [];
  const queue = roots.filter((r) => r in nodes).map((r) => [r, 0]);
  while (queue.length) {
    const [id, depth] = queue.shift();
    if (id in layer) continue;
    layer[id] = depth;
    order.push(id);
    for (const next of out[id] || []) queue.push([next, depth + 1]);
  }
  for (const id of Object.keys(nodes)) if (!(id in layer)) { layer[id] = 0; order.push(id); }
  const perLayer = {};
  const pos = {};
  const boxW = 150; const boxH = 34; const gapY = 30; const gapX = 20;
  for (const id of order) {
    const i = (perLayer[layer[id]] = (perLayer[layer[id]] || 0) + 1) - 1;
    pos[id] = { x: 10 + i * (boxW + gapX), y: 10 + layer[id] * (boxH + gapY) };
  }
  const width = Math.max(...Object.values(perLayer), 1) * (boxW + gapX) + 20;
  const height = (Math.max(...Object.values(layer), 0) + 1) * (boxH + gapY) + 10;
  const root = svg('svg', { class: 'graph', viewBox: `0 0 ${width} ${height}`, width: Math.min(width, 900), role: 'img' });
  for (const [a, targets] of Object.entries(out)) {
    for (const b of targets) {
      const p = pos[a]; const q = pos[b];
      root.append(svg('path', { d: `M${p.x + boxW / 2},${p.y + boxH} C${p.x + boxW / 2},${p.y + boxH + 20} ${q.x + boxW / 2},${q.y - 20} ${q.x + boxW / 2},${q.y}` }));
    }
  }
  for (const id of order) {
    const { x, y } = pos[id];
    const { label, sub, status = '' } = nodes[id];
    root.append(svg('g', { 'data-node': id, 'data-status': status },
      svg('rect', { x, y, width: boxW, height: boxH, class: status }, svg('title', {}, label)),
      svg('text', { x: x + 8, y: y + 15 }, label.length > 20 ? `${label.slice(0, 19)}…` : label),
      svg('text', { x: x + 8, y: y + 28 }, `${sub}${status ? ` · ${status}` : ''}`)));
  }
  return root;
}

// A state machine's states (Next, Default, Choices and Catch edges), each classed by its status.
export function stateGraph(definition, statusOf = () => '') {
  const states = definition.States || {};
  const nodes = {};
  const edges = [];
  for (const [name, state] of Object.entries(states)) {
    nodes[name] = { label: name, sub: state.Type, status: statusOf(name) };
    for (const next of [state.Next, state.Default, ...(state.Choices || []).map((c) => c.Next), ...(state.Catch || []).map((c) => c.Next)]) {
      if (next) edges.push([name, next]);
    }
  }
  return dag(nodes, edges, [definition.StartAt]);
}
