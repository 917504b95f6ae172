// Cost: the meter's ledger over time, stacked by service and by purchase option
// (GET /_nimbus/ec2/meter/series, for a window the person picks), its totals by purchase option
// and instance type (GET /_nimbus/ec2/meter), and
// the what-if comparison (GET /_nimbus/ec2/what-if): the workload the meter has seen — functions'
// requests and GB-seconds, instances' billed seconds — priced as Lambda and as Batch on on-demand,
// spot and reserved capacity, x86_64 and Graviton, with the price sources and their dates.
import { h, put, live, fmt, table, card } from './lib.js';
import { bars, stacked } from './charts.js';

const MARKET_COLORS = { 'on-demand': '#2563eb', spot: '#d97706', reserved: '#7c3aed' };
const SERVICE_COLORS = { EC2: '#0891b2', Batch: '#db2777', Lambda: '#16a34a' };
// The windows a person may pick: seconds, or everything since the first instance.
const WINDOWS = [['all', 'everything metered'], ['3600', 'the last hour'], ['86400', 'the last day'], ['604800', 'the last week']];

// One stacked chart with its legend: each layer's colour and its total over the window.
function overTime(series, key, colors, id, width) {
  const starts = (series.buckets || []).map((t) => Date.parse(t));
  const columns = series[key] || {};
  const layers = Object.keys(colors).filter((name) => name in columns).map((name) => ({ label: name, values: columns[name], color: colors[name] }));
  const legend = h('div', { class: 'legend' }, layers.map((l) => {
    const swatch = h('i');
    swatch.style.background = l.color;
    return h('span', { 'data-series': l.label, 'data-usd': series.totals[key][l.label] }, swatch, `${l.label} ${fmt.usd(series.totals[key][l.label])}`);
  }));
  const span = ` + ${series.bucket_seconds} s`;
  return h('div', { class: 'panel', id }, stacked(starts, layers, { format: fmt.usd, span, width }), legend);
}

function drawSeries(series, { byService, byMarket, note }) {
  // Drawn at the width the column has (a phone's or a desktop's), so text keeps its size.
  const width = (el) => Math.max(240, Math.min(900, (el.clientWidth || 640) - 24));
  put(byService, overTime(series, 'by_service', SERVICE_COLORS, 'cost-by-service', width(byService)));
  put(byMarket, overTime(series, 'by_market', MARKET_COLORS, 'cost-by-market', width(byMarket)));
  const bucket = series.bucket_seconds >= 3600 ? `${series.bucket_seconds / 3600} h` : series.bucket_seconds >= 60 ? `${series.bucket_seconds / 60} min` : `${series.bucket_seconds} s`;
  const lambda = series.lambda && series.lambda.known === false ? ` Lambda unknown: ${series.lambda.why}.` : '';
  note.textContent = `${series.buckets.length} buckets of ${bucket} on nimbus's clock, ${fmt.date(series.since)} → ${fmt.date(series.until)}; total ${fmt.usd(series.totals.total_usd)} (instances ${fmt.usd(series.totals.instances_usd)}, Lambda ${fmt.usd(series.totals.lambda_usd)}).${lambda}`;
}
const label = (o) => `${o.service} · ${o.architecture === 'arm64' ? 'Graviton' : 'x86'}${o.service === 'Batch' ? ` · ${o.market}` : ''}`;

function drawWhatIf(answer, { chart, matrix, workload, sources, assumptions }) {
  const options = answer.options || [];
  const metered = answer.as_metered || {};
  const cheapest = options.reduce((best, o) => (best === null || o.usd < best.usd ? o : best), null);
  put(chart, bars([{ label: 'as metered', value: metered.usd || 0, color: '#111827' },
    ...options.map((o) => ({ label: label(o), value: o.usd, color: o.service === 'Lambda' ? '#16a34a' : MARKET_COLORS[o.market] }))],
  { format: fmt.usd, width: 560 }));
  put(matrix, table([
    ['As', (o) => o.service], ['Architecture', (o) => (o.architecture === 'arm64' ? 'arm64 (Graviton)' : o.architecture)], ['Purchase', (o) => o.market],
    ['Functions\u2019 work', (o) => fmt.usd(o.functions_usd), 'num'], ['Instances\u2019 work', (o) => fmt.usd(o.instances_usd), 'num'],
    ['Total', (o) => fmt.usd(o.usd), 'num'], ['vs metered', (o) => (metered.usd ? `${Math.round((100 * o.usd) / metered.usd)} %` : '–'), 'num'],
  ], [{ service: 'As metered', architecture: '–', market: 'as run', ...metered }, ...options]));
  matrix.querySelectorAll('tbody tr').forEach((row, n) => {
    const option = n === 0 ? null : options[n - 1];
    if (option) row.dataset.option = `${option.service}/${option.architecture}/${option.market}`;
    if (option && option === cheapest) row.classList.add('best');
  });
  const w = answer.workload || {};
  const fn = w.functions || {};
  const inst = w.instances || {};
  put(workload,
    card('Function requests', fmt.num(fn.requests)), card('Function GB-seconds', fmt.num(Math.round((fn.gb_seconds || 0) * 100) / 100)),
    card('Instance hours', ((inst.billed_seconds || 0) / 3600).toFixed(3)), card('vCPU hours', ((inst.vcpu_seconds || 0) / 3600).toFixed(3)),
    card('Cheapest', cheapest ? `${label(cheapest)} ${fmt.usd(cheapest.usd)}` : '–'));
  if (fn.unknown) workload.append(h('p', { class: 'muted' }, `Functions' use unknown: ${fn.unknown}`));
  put(sources, table([['Prices', (s) => s.prices], ['Source', (s) => s.source], ['Date', (s) => s.date]], answer.sources || []));
  put(assumptions, (answer.assumptions || []).map((a) => h('li', {}, a)));
}

export function page(main) {
  const cards = h('div', { class: 'cards' });
  const byMarket = h('div', { class: 'panel' });
  const byType = h('div', { class: 'panel' });
  const ledger = h('div', { class: 'panel' });
  const span = h('p', { class: 'muted' });
  const over = { byService: h('div', {}), byMarket: h('div', {}), note: h('p', { class: 'muted', id: 'cost-over-time-note' }) };
  const parts = {
    chart: h('div', { class: 'panel', id: 'what-if' }),
    matrix: h('div', { class: 'panel whatif', id: 'what-if-table' }),
    workload: h('div', { class: 'cards', id: 'what-if-workload' }),
    sources: h('div', { class: 'panel', id: 'price-sources' }),
    assumptions: h('ul', { class: 'muted' }),
  };
  const windowPick = h('select', { id: 'cost-window', 'aria-label': 'window' }, WINDOWS.map(([value, text]) => h('option', { value }, text)));
  put(main, h('h1', {}, 'Cost'), cards,
    h('h2', {}, 'Over time: ', windowPick), over.note,
    h('div', { class: 'grid2', id: 'cost-over-time' }, h('div', {}, h('h3', {}, 'By service, over time'), over.byService), h('div', {}, h('h3', {}, 'By purchase option, over time'), over.byMarket)),
    h('div', { class: 'grid2' }, h('div', {}, h('h2', {}, 'Totals by purchase option'), byMarket), h('div', {}, h('h2', {}, 'Totals by instance type'), byType)),
    h('h2', {}, 'What if: this workload as Lambda or as Batch, on each purchase option and architecture'), parts.workload, parts.chart, parts.matrix,
    h('h2', {}, 'Price sources'), parts.sources, parts.assumptions,
    h('h2', {}, 'Ledger'), ledger, span);
  // The charts are drawn at their column's width: a window resized or a phone turned redraws them.
  let lastSeries = null;
  let resizing = 0;
  const onResize = () => {
    cancelAnimationFrame(resizing);
    resizing = requestAnimationFrame(() => lastSeries && drawSeries(lastSeries, over));
  };
  window.addEventListener('resize', onResize);
  const seen = new Set();
  const loaded = (kind) => { seen.add(kind); if (seen.size === 3) main.dataset.loaded = 'true'; };
  const onUpdate = (path, body) => {
    if (path.startsWith('/_nimbus/ec2/meter/series')) {
      lastSeries = body;
      drawSeries(body, over);
      loaded('series');
      return;
    }
    if (path.endsWith('/what-if')) {
      drawWhatIf(body, parts);
      loaded('what-if');
      return;
    }
    const meter = body;
    const lines = meter.lines || [];
    put(cards, card('Metered cost', fmt.usd(meter.total_usd)), card('All on-demand', fmt.usd(meter.on_demand_usd)),
      card('Instance hours', (lines.reduce((n, l) => n + (l.billed_seconds || 0), 0) / 3600).toFixed(2)),
      card('Since', Date.parse(meter.since) > 0 ? fmt.date(meter.since) : 'the first instance'));
    const by = (key) => {
      const m = new Map();
      for (const l of lines) m.set(l[key], (m.get(l[key]) || 0) + l.usd);
      return [...m.entries()].map(([name, value]) => ({ label: name, value, color: MARKET_COLORS[name] || '#2563eb' }));
    };
    put(byMarket, bars(by('market'), { format: fmt.usd }));
    put(byType, bars(by('instance_type'), { format: fmt.usd }));
    put(ledger, table([['Type', (l) => l.instance_type], ['Market', (l) => l.market], ['Arch', (l) => l.architecture], ['Zone', (l) => l.availability_zone],
      ['Instances', (l) => l.instances, 'num'], ['Billed h', (l) => (l.billed_seconds / 3600).toFixed(3), 'num'], ['Cost', (l) => fmt.usd(l.usd), 'num'],
      ['On-demand', (l) => fmt.usd(l.on_demand_usd), 'num'], ['Spot', (l) => fmt.usd(l.spot_usd), 'num'],
      ['Graviton', (l) => (l.graviton_type ? `${l.graviton_type} ${fmt.usd(l.graviton_usd)}` : '–')]], lines, 'Nothing metered yet.'));
    span.textContent = `Ledger ${meter.since} → ${meter.until}. Prices: ${meter.source || '–'}. Spot: ${meter.spot_model || '–'}.`;
    loaded('meter');
  };
  // The feed asks each path again every second and sends it when it changed; a new window is a
  // new feed.
  let stop = null;
  const watch = () => {
    if (stop) stop();
    const since = windowPick.value === 'all' ? '' : `?since=${windowPick.value}`;
    stop = live({ watch: ['/_nimbus/ec2/meter', '/_nimbus/ec2/what-if', `/_nimbus/ec2/meter/series${since}`] }, onUpdate);
  };
  windowPick.addEventListener('change', watch);
  watch();
  return () => {
    window.removeEventListener('resize', onResize);
    if (stop) stop();
  };
}
