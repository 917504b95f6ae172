// Batch: queues with their jobs by state and recent jobs (GET /_nimbus/batch/jobs); one job's
// attempts, dependencies and logs (Batch's DescribeJobs, the job's log stream live), and an array
// job's children as a grid (GET /_nimbus/batch/array?job=…, drawn on a canvas).
import { h, put, live, every, rest, fmt, badge, kv, table } from './lib.js';
import { drawGrid, dag, GRID_COLORS } from './charts.js';

const STATES = ['SUBMITTED', 'PENDING', 'RUNNABLE', 'STARTING', 'RUNNING', 'SUCCEEDED', 'FAILED'];

function progress(summary) {
  if (!summary) return '';
  const total = summary.size || STATES.reduce((n, s) => n + (summary[s] || 0), 0);
  return `${summary.SUCCEEDED || 0}/${total} done${summary.FAILED ? `, ${summary.FAILED} failed` : ''}`;
}

export function list(main) {
  const queues = h('div', { class: 'panel' });
  const jobs = h('div', { class: 'panel' });
  const graph = h('div', { class: 'panel', id: 'dependencies' });
  put(main, h('h1', {}, 'Batch'), h('h2', {}, 'Queues'), queues, h('h2', {}, 'Recent jobs'), jobs,
    h('h2', {}, 'Dependencies'), graph);
  return live({ watch: ['/_nimbus/batch/jobs'] }, (_, body) => {
    const rows = Object.entries(body.queues || {}).map(([name, counts]) => ({ name, ...counts }));
    put(queues, table([['Queue', (q) => q.name], ...STATES.map((s) => [s, (q) => fmt.num(q[s] || 0), 'num'])], rows, 'No jobs submitted yet.'));
    put(jobs, table([
      ['Job', (j) => h('a', { href: `#/batch/jobs/${encodeURIComponent(j.jobId)}` }, j.jobName)],
      ['Queue', (j) => j.jobQueue], ['Status', (j) => badge(j.status)],
      ['Array', (j) => progress(j.arrayProperties?.statusSummary ? { size: j.arrayProperties.size, ...j.arrayProperties.statusSummary } : null)],
      ['Created', (j) => fmt.time(j.createdAt)], ['Reason', (j) => j.statusReason || ''],
    ], body.jobs || [], 'No jobs yet.'));
    // Jobs that depend on others or are depended on, each pointing at its dependants.
    const recent = body.jobs || [];
    const edges = recent.flatMap((j) => (j.dependsOn || []).map((d) => [d.jobId, j.jobId]));
    const linked = new Set(edges.flat());
    const nodes = Object.fromEntries(recent.filter((j) => linked.has(j.jobId)).map((j) => [j.jobId, { label: j.jobName, sub: j.jobId.slice(0, 8), status: j.status }]));
    const roots = Object.keys(nodes).filter((id) => !edges.some(([, b]) => b === id));
    put(graph, Object.keys(nodes).length ? dag(nodes, edges, roots) : h('p', { class: 'muted' }, 'No dependencies among recent jobs.'));
    main.dataset.loaded = 'true';
  });
}

export async function job(main, id) {
  const describe = async () => ((await rest('batch', 'POST', '/v1/describejobs', { jobs: [id] })).jobs || [])[0];
  const job = await describe();
  if (!job) { put(main, h('h1', {}, id), h('p', {}, 'No such job.')); return null; }
  const isArray = job.arrayProperties && job.arrayProperties.size;
  const head = h('h1');
  const facts = h('div', { class: 'panel' });
  const attempts = h('div', { class: 'panel' });
  const grid = h('canvas', { class: 'arraygrid', id: 'array-grid', 'aria-label': 'array children' });
  const counts = h('div', { class: 'legend', id: 'array-counts' });
  const logBox = h('div', { class: 'logs', id: 'logs' });
  const filter = h('input', { type: 'search', placeholder: 'Filter log lines', 'aria-label': 'filter logs' });
  const lines = [];
  const drawLogs = () => {
    const needle = filter.value.toLowerCase();
    logBox.replaceChildren(...lines.filter((l) => !needle || l.message.toLowerCase().includes(needle)).map((l) =>
      h('div', { class: 'line' }, h('span', { class: 'ts' }, fmt.time(l.timestamp)), l.message.trimEnd())));
  };
  filter.addEventListener('input', drawLogs);
  const cancel = h('button', { type: 'button', class: 'ghost', id: 'cancel-job' }, 'Cancel job');
  cancel.addEventListener('click', async () => {
    if (!window.confirm(`Cancel ${job.jobName}? A job not yet running is cancelled; a running job is terminated.`)) return;
    cancel.disabled = true;
    try {
      const now = await describe();
      const operation = ['STARTING', 'RUNNING'].includes(now?.status) ? 'terminatejob' : 'canceljob';
      await rest('batch', 'POST', `/v1/${operation}`, { jobId: id, reason: 'Cancelled from the nimbus console' });
      cancel.textContent = 'Asked';
    } catch (error) { cancel.textContent = String(error.message || error); }
  });
  const show = (job) => {
    const finished = ['SUCCEEDED', 'FAILED'].includes(job.status);
    put(head, job.jobName, ' ', badge(job.status), ' ', finished ? null : cancel);
    put(facts, kv([['Job id', job.jobId], ['Queue', job.jobQueue], ['Definition', job.jobDefinition],
      ['Created', fmt.date(job.createdAt)], ['Started', fmt.date(job.startedAt)], ['Stopped', fmt.date(job.stoppedAt)],
      ['Reason', job.statusReason], ['Depends on', (job.dependsOn || []).map((d) => h('a', { href: `#/batch/jobs/${d.jobId}` }, `${d.jobId} `))]]));
    put(attempts, table([['#', (a) => a.n], ['Instance', (a) => a.container?.containerInstanceArn || a.container?.taskArn || ''],
      ['Exit code', (a) => a.container?.exitCode ?? ''], ['Started', (a) => fmt.time(a.startedAt)], ['Stopped', (a) => fmt.time(a.stoppedAt)],
      ['Reason', (a) => a.statusReason || a.container?.reason || '']], (job.attempts || []).map((a, i) => ({ n: i + 1, ...a })),
    isArray ? 'An array job runs as its children.' : 'No attempts yet.'));
  };
  show(job);
  const stream = job.container?.logStreamName;
  put(main, head, facts,
    isArray ? [h('h2', {}, `Array children (${job.arrayProperties.size})`),
      h('div', { class: 'legend' }, Object.entries({ D: 'succeeded', F: 'failed', U: 'running', T: 'starting', R: 'runnable', P: 'pending', S: 'submitted' })
        .map(([k, label]) => h('span', {}, h('i', { class: `swatch-${k}` }), label))), counts, grid] : null,
    h('h2', {}, 'Attempts'), attempts,
    stream ? [h('h2', {}, 'Logs (live)'), h('div', { class: 'toolbar' }, filter), logBox] : null);
  if (!isArray) main.dataset.loaded = 'true';
  // The legend's swatches take their colours here (the CSP allows no inline styles in HTML).
  for (const [k, color] of Object.entries(GRID_COLORS)) for (const el of main.querySelectorAll(`.swatch-${CSS.escape(k)}`)) el.style.background = color;
  const watch = isArray ? [`/_nimbus/batch/array?job=${encodeURIComponent(id)}`] : [];
  const stopFeed = live({ watch, logs: stream ? '/aws/batch/job' : undefined, stream }, (_, body) => {
    drawGrid(grid, body.statuses || '');
    grid.dataset.statuses = body.statuses || '';
    put(counts, Object.entries(body.counts || {}).map(([s, n]) => h('span', {}, `${s}: ${fmt.num(n)}`)));
    main.dataset.loaded = 'true';
  }, (events) => { lines.push(...events); drawLogs(); });
  let first = true;
  const stopRefresh = every(2000, async () => {
    if (first) { first = false; return; }
    const now = await describe();
    if (now) show(now);
  });
  return () => { stopFeed(); stopRefresh(); };
}
