// Streams, queues and schedules: stream mappings' shards with iterator age (GET
// /_nimbus/streams), schedules' next firings (GET /_nimbus/schedules), and queues' depth,
// in-flight and dead-letter counts (SQS's API, every three seconds).
import { h, put, live, json, fmt, table, errorBox } from './lib.js';

function generic(rows, empty) {
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))].filter((k) => typeof rows[0][k] !== 'object' || rows[0][k] === null);
  return table(keys.map((k) => [k.replace(/_/g, ' '), (r) => (r[k] === null || r[k] === undefined ? '–' : String(r[k]))]), rows, empty);
}

export function page(main) {
  const streams = h('div', { class: 'panel' });
  const schedules = h('div', { class: 'panel' });
  const queues = h('div', { class: 'panel', id: 'queues' });
  put(main, h('h1', {}, 'Streams, queues and schedules'), h('h2', {}, 'Stream mappings'), streams,
    h('h2', {}, 'Queues'), queues, h('h2', {}, 'Schedules'), schedules);
  const stop = live({ watch: ['/_nimbus/streams', '/_nimbus/schedules'] }, (path, body) => {
    if (path === '/_nimbus/streams') {
      const rows = (body.mappings || []).flatMap((m) => (m.shards && m.shards.length ? m.shards.map((s) => ({ ...m, ...s, shards: undefined })) : [m]));
      put(streams, generic(rows, 'No stream mappings.'));
    } else {
      put(schedules, table([['Kind', (s) => s.kind], ['Name', (s) => s.name], ['Group / bus', (s) => s.group || ''], ['Expression', (s) => s.expression],
        ['Next fire', (s) => fmt.date(s.next_fire_ms)]], body.schedules || [], 'No schedules.'));
    }
    main.dataset.loaded = 'true';
  });
  let timer = null;
  let stopped = false;
  const refresh = async () => {
    try {
      const listed = await json('sqs', 'AmazonSQS.ListQueues', {});
      const rows = await Promise.all((listed.QueueUrls || []).slice(0, 200).map(async (url) => {
        const a = (await json('sqs', 'AmazonSQS.GetQueueAttributes', { QueueUrl: url, AttributeNames: ['All'] })).Attributes || {};
        return { url, name: url.split('/').pop(), depth: a.ApproximateNumberOfMessages, inflight: a.ApproximateNumberOfMessagesNotVisible,
          delayed: a.ApproximateNumberOfMessagesDelayed, dlq: a.RedrivePolicy ? JSON.parse(a.RedrivePolicy).deadLetterTargetArn.split(':').pop() : '' };
      }));
      const depthOf = Object.fromEntries(rows.map((q) => [q.name, q.depth]));
      put(queues, table([['Queue', (q) => q.name], ['Depth', (q) => fmt.num(q.depth), 'num'], ['In flight', (q) => fmt.num(q.inflight), 'num'],
        ['Delayed', (q) => fmt.num(q.delayed), 'num'], ['Dead-letter queue', (q) => (q.dlq ? `${q.dlq} (${fmt.num(depthOf[q.dlq] ?? 0)} messages)` : '')]], rows, 'No queues.'));
    } catch (error) { put(queues, errorBox(error)); }
    if (!stopped) timer = setTimeout(refresh, 3000);
  };
  refresh();
  return () => { stopped = true; stop(); clearTimeout(timer); };
}
