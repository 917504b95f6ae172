// Capacity: instances by type, architecture and market with the CPU and memory each uses now
// (GET /_nimbus/ec2/instances, from their cgroups); state changes, spot interruptions and auto
// scaling activities on a timeline (GET /_nimbus/ec2/events: kept in nimbus's store, so the
// timeline holds what happened before the page opened and before a restart); the groups'
// scaling activities (Auto Scaling's API).
import { h, put, live, every, query, xtext, xmembers, fmt, badge, table, card } from './lib.js';
import { bars, timeline, meter } from './charts.js';

// The timeline's events: the newest this many.
const EVENTS = 500;

// Graviton families carry a `g` after the generation digit (m7g, c6gn, t4g).
const arch = (type) => (/^[a-z]+\d+[a-z]*g[a-z]*\./.test(type) && !/^(g|p)\d/.test(type) ? 'arm64' : 'x86_64');

function groupCount(list, key) {
  const counts = new Map();
  for (const item of list) counts.set(key(item), (counts.get(key(item)) || 0) + 1);
  return [...counts.entries()].map(([label, value]) => ({ label, value }));
}

const EVENT_COLORS = { running: '#16a34a', pending: '#93c5fd', 'shutting-down': '#d97706', terminated: '#6b7280', stopped: '#6b7280', interruption: '#dc2626', scaling: '#a855f7' };

// One event on the timeline: an instance's state change, its spot interruption warning, or an
// auto scaling activity on it (its group's launch or termination).
function timelineItem(e) {
  const d = e.detail || {};
  const lane = d['instance-id'] || d.EC2InstanceId;
  if (!lane) return null;
  const t = Date.parse(e.time);
  if (e.source === 'aws.autoscaling') {
    return { t, lane, color: EVENT_COLORS.scaling, cls: 'scaling', label: `${lane}: ${e['detail-type']} (${d.AutoScalingGroupName || ''})` };
  }
  const interrupted = /Interruption Warning/.test(e['detail-type']);
  const kind = interrupted ? 'interruption' : (d.state || 'event');
  return { t, lane, color: EVENT_COLORS[kind] || '#a855f7', cls: interrupted ? 'interruption' : kind,
    label: `${lane}: ${interrupted ? `spot interruption (${d['instance-action']})` : kind}` };
}

// CPUs busy now against the instance's share of this host, and memory in use against its limit.
function cpuCell(i) {
  if (!i.usage) return '–';
  const of = i.host_share?.vcpus || i.vcpus || 1;
  return meter(i.usage.cpus / of, `${i.usage.cpus.toFixed(2)} / ${of}`, 'cpu');
}

function memoryCell(i) {
  if (!i.usage) return '–';
  const of = i.host_share?.memory_mib || i.memory_mib || 1;
  return meter(i.usage.memory_mib / of, `${fmt.num(i.usage.memory_mib)} / ${fmt.mib(of)}`, 'mem');
}

// Interrupts a spot instance through nimbus's test switch (POST /_nimbus/ec2/interrupt), after
// asking: the instance gets its notice and is then terminated.
function interruptButton(id) {
  return h('button', { type: 'button', class: 'ghost interrupt', 'data-instance': id, onclick: async (event) => {
    if (!window.confirm(`Interrupt spot instance ${id}? It gets the interruption notice, then it is terminated.`)) return;
    event.target.disabled = true;
    try {
      const response = await fetch(`/_nimbus/ec2/interrupt?instance=${encodeURIComponent(id)}`, { method: 'POST', headers: { 'x-nimbus-console': '1' } });
      event.target.textContent = response.ok ? 'notice given' : `failed (${response.status})`;
    } catch (error) { event.target.textContent = String(error); }
  } }, 'Interrupt');
}

export function page(main) {
  const cards = h('div', { class: 'cards' });
  const byType = h('div', { class: 'panel' });
  const byMarket = h('div', { class: 'panel' });
  const byArch = h('div', { class: 'panel' });
  const line = h('div', { class: 'panel', id: 'spot-timeline' });
  const instances = h('div', { class: 'panel' });
  const activities = h('div', { class: 'panel' });
  put(main, h('h1', {}, 'Capacity'), cards,
    h('div', { class: 'grid2' }, h('div', {}, h('h2', {}, 'By type'), byType), h('div', {}, h('h2', {}, 'By market'), byMarket, h('h2', {}, 'By architecture'), byArch)),
    h('h2', {}, 'Timeline: state changes, spot interruptions and scaling activities'),
    h('div', { class: 'legend' }, Object.entries(EVENT_COLORS).map(([k, c]) => { const i = h('i'); i.style.background = c; return h('span', {}, i, k); })),
    line, h('h2', {}, 'Instances'), instances, h('h2', {}, 'Auto scaling activities'), activities);
  const stopActivities = every(3000, async () => {
    // Group by group: nimbus's DescribeScalingActivities wants a group's name.
    const groups = xmembers(await query('autoscaling', '2011-01-01', 'DescribeAutoScalingGroups'), 'AutoScalingGroups')
      .map((m) => xtext(m, 'AutoScalingGroupName')).slice(0, 20);
    const docs = await Promise.all(groups.map((name) => query('autoscaling', '2011-01-01', 'DescribeScalingActivities', { AutoScalingGroupName: name, MaxRecords: '20' })));
    const rows = docs.flatMap((doc) => xmembers(doc, 'Activities')).map((m) => ({ group: xtext(m, 'AutoScalingGroupName'), status: xtext(m, 'StatusCode'),
      description: xtext(m, 'Description'), cause: xtext(m, 'Cause'), start: xtext(m, 'StartTime') })).sort((a, b) => Date.parse(b.start) - Date.parse(a.start));
    put(activities, table([['Time', (a) => fmt.time(a.start)], ['Group', (a) => a.group], ['Status', (a) => badge(a.status)],
      ['Activity', (a) => a.description], ['Cause', (a) => a.cause]], rows, 'No auto scaling activities.'));
  });
  const stopFeed = live({ watch: ['/_nimbus/ec2/instances', `/_nimbus/ec2/events?limit=${EVENTS}`] }, (path, body) => {
    if (path.endsWith('/instances')) {
      const list = body.instances || [];
      const running = list.filter((i) => i.state === 'running');
      put(cards, card('Instances', fmt.num(list.length)), card('Running', fmt.num(running.length)),
        card('vCPUs in use', `${fmt.num(running.reduce((n, i) => n + (i.vcpus || 0), 0))} / ${fmt.num(body.capacity?.vcpus)}`),
        card('Memory in use', `${fmt.mib(running.reduce((n, i) => n + (i.memory_mib || 0), 0))}`),
        card('Spend rate', `${fmt.usd(running.reduce((n, i) => n + (i.usd_per_hour || 0), 0))}/h`));
      put(byType, bars(groupCount(list, (i) => i.instance_type)));
      put(byMarket, bars(groupCount(list, (i) => i.market).map((x) => ({ ...x, color: x.label === 'spot' ? '#d97706' : '#2563eb' }))));
      put(byArch, bars(groupCount(list, (i) => arch(i.instance_type))));
      put(instances, table([
        ['Instance', (i) => i.instance_id], ['Type', (i) => i.instance_type], ['Arch', (i) => arch(i.instance_type)], ['Market', (i) => i.market],
        ['State', (i) => badge(i.state)], ['Zone', (i) => i.availability_zone], ['vCPUs', (i) => i.vcpus, 'num'], ['Memory', (i) => fmt.mib(i.memory_mib), 'num'],
        ['vCPUs busy now / its share', cpuCell], ['Memory now / its limit', memoryCell],
        ['Peak memory', (i) => fmt.mib(i.memory_peak_mib), 'num'], ['$/h', (i) => fmt.usd(i.usd_per_hour), 'num'],
        ['', (i) => (i.market === 'spot' && i.state === 'running' ? interruptButton(i.instance_id) : '')],
      ], list, 'No instances.'));
      for (const row of instances.querySelectorAll('tbody tr')) row.dataset.instance = row.firstChild.textContent;
      main.dataset.loaded = 'true';
    } else {
      const items = (body.events || []).map(timelineItem).filter(Boolean);
      const lanes = [...new Set(items.map((i) => i.lane))].slice(-16);
      const shown = items.filter((i) => lanes.includes(i.lane));
      put(line, timeline(shown, { lanes }));
      line.dataset.interruptions = shown.filter((i) => i.cls === 'interruption').map((i) => i.lane).join(' ');
      line.dataset.events = String(shown.length);
    }
  });
  return () => { stopFeed(); stopActivities(); };
}
