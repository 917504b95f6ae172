// Functions: the list (GET /_nimbus/functions, live, virtualised so 1,000 functions stay
// smooth) with sparklines of each function's last hour per minute from CloudWatch's figures
// (GET /_nimbus/metrics/functions: history from before the page opened), and one function's page
// (Lambda's API for configuration, versions, aliases and event sources; its log group streamed
// live; a test invoke).
import { h, put, live, every, rest, json, fmt, badge, kv, table, errorBox, getJson, region } from './lib.js';
import { sparkline, histogram } from './charts.js';

const ROW = 34;
const HISTORY_MINUTES = 60;
// How often the per-minute history is asked again (its newest minute fills as it goes).
const HISTORY_EVERY_MS = 10000;
const IDLE = { invocations: [], errors: [], p50_ms: [], p99_ms: [] };

export function list(main) {
  const filter = h('input', { type: 'search', placeholder: 'Filter by name', 'aria-label': 'filter functions' });
  const count = h('span', { class: 'muted' });
  const box = h('div', { class: 'vlist', id: 'function-list' });
  const head = h('div', { class: 'row head' },
    h('span', {}, 'Function'), h('span', {}, 'Invocations'), h('span', {}, 'Errors'), h('span', { class: 'wide' }, 'Throttles'),
    h('span', {}, 'p50 / p99'), h('span', { class: 'wide' }, 'Activity · duration'), h('span', { class: 'wide' }, 'Runtime'));
  const spacer = h('div');
  const rows = h('div');
  box.append(head, spacer, rows);
  put(main, h('h1', {}, 'Functions'), h('div', { class: 'toolbar' }, filter, count), box,
    h('p', { class: 'muted' }, `The last ${HISTORY_MINUTES} minutes from CloudWatch, per minute: invocations (blue) and errors (red); duration p50 (green) and p99 (orange).`));
  // name → per-minute series of the last hour (functions idle all hour are absent).
  let history = {};
  let all = [];
  let shown = [];
  const draw = () => {
    const top = box.scrollTop;
    const first = Math.max(0, Math.floor(top / ROW) - 5);
    const last = Math.min(shown.length, first + Math.ceil(box.clientHeight / ROW) + 10);
    spacer.style.height = `${shown.length * ROW}px`;
    const out = [];
    for (let i = first; i < last; i++) {
      const f = shown[i];
      const seen = (!f.region || f.region === region()) && history[f.name] || IDLE;
      const row = h('div', { class: 'row', 'data-function': f.name },
        h('span', {}, h('a', { href: `#/functions/${encodeURIComponent(link(f))}` }, f.name),
          f.region && f.region !== region() ? h('span', { class: 'muted' }, ` ${f.region}`) : ''),
        h('span', { class: 'num' }, fmt.num(f.invocations ?? 0)),
        h('span', { class: `num errors ${f.errors ? 'bad' : ''}` }, fmt.num(f.errors ?? 0)),
        h('span', { class: 'num wide' }, fmt.num(f.throttles ?? 0)),
        h('span', {}, `${f.p50_ms == null ? '–' : fmt.ms(f.p50_ms)} / ${f.p99_ms == null ? '–' : fmt.ms(f.p99_ms)}`),
        h('span', { class: 'wide' },
          // Errors first: invocations are drawn over them where both are zero.
          sparkline([seen.errors, seen.invocations], { width: 70, classes: ['err', ''], title: 'invocations and errors per minute, last hour' }), ' ',
          sparkline([seen.p50_ms.map((v) => v || 0), seen.p99_ms.map((v) => v || 0)], { width: 70, classes: ['p50', 'p99'], title: 'duration p50 and p99 per minute, last hour' })),
        h('span', { class: 'wide muted' }, f.runtime || ''));
      row.style.top = `${ROW + i * ROW}px`;
      out.push(row);
    }
    rows.replaceChildren(...out);
  };
  const refilter = () => {
    const needle = filter.value.trim().toLowerCase();
    shown = needle ? all.filter((f) => f.name.toLowerCase().includes(needle)) : all;
    count.textContent = `${shown.length} of ${all.length} functions`;
    draw();
  };
  box.addEventListener('scroll', () => requestAnimationFrame(draw));
  filter.addEventListener('input', refilter);
  const stopHistory = every(HISTORY_EVERY_MS, async () => {
    // The console's region's figures (the request is signed for it); rows of other regions
    // draw none.
    history = (await rest('monitoring', 'GET', `/_nimbus/metrics/functions?minutes=${HISTORY_MINUTES}`)).functions || {};
    box.dataset.history = String(Object.keys(history).length);
    draw();
  });
  const stopFeed = live({ watch: ['/_nimbus/functions'] }, (_, body) => {
    all = (body.functions || []).slice().sort((a, b) => a.name.localeCompare(b.name));
    refilter();
    main.dataset.loaded = 'true';
  });
  return () => { stopFeed(); stopHistory(); };
}

// The last hour of one of the function's CloudWatch metrics, per minute.
async function lastHour(name, metric, statistics) {
  const now = Date.now() / 1000;
  const input = { Namespace: 'AWS/Lambda', MetricName: metric, Dimensions: [{ Name: 'FunctionName', Value: name }],
    StartTime: now - 3600, EndTime: now + 60, Period: 60, ...statistics };
  const answer = await json('monitoring', 'GraniteServiceVersion20100801.GetMetricStatistics', input);
  return (answer.Datapoints || []).sort((a, b) => a.Timestamp - b.Timestamp);
}

function parseReport(message) {
  const match = /REPORT RequestId:.*?\tDuration: ([\d.]+) ms/.exec(message) || /Duration: ([\d.]+) ms/.exec(message);
  return match ? Number(match[1]) : null;
}

// A function of the console's region by name; another region's by ARN (its page then switches
// the console to that region, whose API holds it).
function link(f) {
  return f.region && f.region !== region() && f.arn ? f.arn : f.name;
}

export async function detail(main, reference) {
  const arn = /^arn:aws:lambda:([^:]+):\d{12}:function:([^:]+)$/.exec(reference);
  if (arn) localStorage.setItem('nimbus.region', arn[1]);
  const name = arn ? arn[2] : reference;
  const base = `/2015-03-31/functions/${encodeURIComponent(name)}`;
  put(main, h('h1', {}, name), h('p', { class: 'muted' }, 'Loading…'));
  const [fn, versions, aliases, mappings, streams] = await Promise.all([
    rest('lambda', 'GET', base),
    rest('lambda', 'GET', `${base}/versions`).catch(() => ({ Versions: [] })),
    rest('lambda', 'GET', `${base}/aliases`).catch(() => ({ Aliases: [] })),
    rest('lambda', 'GET', `/2015-03-31/event-source-mappings/?FunctionName=${encodeURIComponent(name)}`).catch(() => ({ EventSourceMappings: [] })),
    getJson('/_nimbus/streams').catch(() => ({ mappings: [] })),
  ]);
  const config = fn.Configuration || {};
  const figures = h('div', { class: 'cards' });
  const durations = [];
  const histo = h('div', { class: 'panel' }, histogram([]));
  const filter = h('input', { type: 'search', placeholder: 'Filter log lines', 'aria-label': 'filter logs' });
  const logBox = h('div', { class: 'logs', id: 'logs' });
  const lines = [];
  const drawLogs = () => {
    const needle = filter.value.toLowerCase();
    const atBottom = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 20;
    logBox.replaceChildren(...lines.filter((l) => !needle || l.message.toLowerCase().includes(needle)).slice(-1000).map((l) =>
      h('div', { class: `line ${/error|exception|traceback/i.test(l.message) ? 'error' : ''}` },
        h('span', { class: 'ts' }, fmt.time(l.timestamp)), l.message.trimEnd())));
    if (atBottom) logBox.scrollTop = logBox.scrollHeight;
  };
  filter.addEventListener('input', drawLogs);
  const payload = h('textarea', { 'aria-label': 'test event', spellcheck: 'false' }, '{\n  "key": "value"\n}');
  const result = h('pre', { class: 'panel', id: 'invoke-result' }, 'No test invoke yet.');
  const invoke = h('button', { type: 'button', id: 'invoke' }, 'Test invoke');
  invoke.addEventListener('click', async () => {
    let body;
    try { body = JSON.stringify(JSON.parse(payload.value)); } catch (error) { result.textContent = `The payload is not JSON: ${error.message}`; return; }
    if (!window.confirm(`Invoke ${name} with this payload? It runs the function's code.`)) return;
    result.textContent = 'Invoking…';
    try {
      const response = await fetch(`${base}/invocations`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-amz-log-type': 'None', 'x-nimbus-console': '1',
          authorization: `AWS4-HMAC-SHA256 Credential=console/20240101/${localStorage.getItem('nimbus.region') || 'us-east-1'}/lambda/aws4_request, SignedHeaders=host, Signature=0` },
        body,
      });
      const text = await response.text();
      const error = response.headers.get('x-amz-function-error');
      result.textContent = `${response.status}${error ? ` (function error: ${error})` : ''}\n${text}`;
      result.className = `panel ${error || !response.ok ? 'bad' : ''}`;
    } catch (error) { result.textContent = String(error); }
  });
  const iteratorAge = (uuid) => {
    const found = (streams.mappings || []).find((m) => m.uuid === uuid || m.UUID === uuid);
    const ages = (found?.shards || []).map((s) => s.iterator_age_ms || 0);
    return ages.length ? `${fmt.num(Math.max(...ages))} ms (${ages.length} shard${ages.length > 1 ? 's' : ''})` : '–';
  };
  const hour = h('div', { class: 'panel', id: 'last-hour' }, h('span', { class: 'muted' }, 'Loading…'));
  put(main,
    h('h1', {}, name, ' ', badge(config.State || '')),
    figures,
    h('h2', {}, 'Last hour (CloudWatch, per minute)'), hour,
    h('div', { class: 'grid2' },
      h('div', {}, h('h2', {}, 'Configuration'), h('div', { class: 'panel' }, kv([
        ['Runtime', config.Runtime || config.PackageType], ['Handler', config.Handler], ['Memory', fmt.mib(config.MemorySize)],
        ['Timeout', `${config.Timeout} s`], ['Architecture', (config.Architectures || []).join(', ')], ['Last modified', config.LastModified],
        ['Role', config.Role], ['ARN', config.FunctionArn]]))),
      h('div', {}, h('h2', {}, 'Duration histogram'), histo)),
    h('div', { class: 'grid2' },
      h('div', {}, h('h2', {}, 'Versions'), h('div', { class: 'panel' }, table([['Version', (v) => v.Version], ['Description', (v) => v.Description || ''], ['Modified', (v) => v.LastModified]], versions.Versions || []))),
      h('div', {}, h('h2', {}, 'Aliases'), h('div', { class: 'panel' }, table([['Alias', (a) => a.Name], ['Version', (a) => a.FunctionVersion],
        ['Weights', (a) => JSON.stringify(a.RoutingConfig?.AdditionalVersionWeights || {})]], aliases.Aliases || [], 'No aliases.')))),
    h('h2', {}, 'Event sources'),
    h('div', { class: 'panel' }, table([['Source', (m) => m.EventSourceArn], ['State', (m) => badge(m.State)], ['Batch', (m) => m.BatchSize, 'num'],
      ['Iterator age', (m) => iteratorAge(m.UUID)], ['Last result', (m) => m.LastProcessingResult || '']], mappings.EventSourceMappings || [], 'No event sources.')),
    h('h2', {}, 'Logs (live)'), h('div', { class: 'toolbar' }, filter), logBox,
    h('h2', {}, 'Test invoke'), payload, h('div', { class: 'toolbar' }, invoke, h('span', { class: 'muted' }, 'Runs the function (asks first).')), result);
  const stopHour = every(10000, async () => {
    const [perMinute, counts] = await Promise.all([
      lastHour(name, 'Duration', { ExtendedStatistics: ['p50', 'p99'] }),
      lastHour(name, 'Invocations', { Statistics: ['Sum'] }),
    ]);
    const errors = await lastHour(name, 'Errors', { Statistics: ['Sum'] });
    const errorsAt = Object.fromEntries(errors.map((d) => [d.Timestamp, d.Sum]));
    put(hour,
      h('div', { class: 'legend' }, h('span', {}, 'duration p50 (green), p99 (orange)'),
        h('span', {}, `${perMinute.length} minute${perMinute.length === 1 ? '' : 's'} with invocations`)),
      sparkline([perMinute.map((d) => d.ExtendedStatistics?.p50 || 0), perMinute.map((d) => d.ExtendedStatistics?.p99 || 0)],
        { width: 480, height: 60, classes: ['p50', 'p99'], title: 'duration p50 and p99 per minute' }),
      h('div', { class: 'legend' }, h('span', {}, 'invocations (blue), errors (red)')),
      sparkline([counts.map((d) => d.Sum || 0), counts.map((d) => errorsAt[d.Timestamp] || 0)],
        { width: 480, height: 40, classes: ['', 'err'], title: 'invocations and errors per minute' }));
  });
  const stopFeed = live({ watch: ['/_nimbus/functions'], logs: `/aws/lambda/${name}` }, (_, body) => {
    const f = (body.functions || []).find((x) => x.name === name) || {};
    put(figures, h('div', { class: 'card', id: 'fn-invocations' }, h('div', { class: 'k' }, 'Invocations'), h('div', { class: 'v' }, fmt.num(f.invocations ?? 0))),
      h('div', { class: 'card', id: 'fn-errors' }, h('div', { class: 'k' }, 'Errors'), h('div', { class: `v ${f.errors ? 'bad' : ''}` }, fmt.num(f.errors ?? 0))),
      h('div', { class: 'card' }, h('div', { class: 'k' }, 'Throttles'), h('div', { class: 'v' }, fmt.num(f.throttles ?? 0))),
      h('div', { class: 'card' }, h('div', { class: 'k' }, 'p50 / p99'), h('div', { class: 'v' }, `${fmt.ms(f.p50_ms)} / ${fmt.ms(f.p99_ms)}`)),
      h('div', { class: 'card' }, h('div', { class: 'k' }, 'Warm / busy'), h('div', { class: 'v' }, `${f.warm ?? 0} / ${f.busy ?? 0}`)));
    main.dataset.loaded = 'true';
  }, (events) => {
    for (const event of events) {
      lines.push(event);
      const d = parseReport(event.message);
      if (d !== null) durations.push(d);
    }
    if (lines.length > 5000) lines.splice(0, lines.length - 5000);
    put(histo, histogram(durations.slice(-2000)));
    drawLogs();
  });
  return () => { stopFeed(); stopHour(); };
}
export { errorBox };
