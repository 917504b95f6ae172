// Capacity (GET /_nimbus/ec2/instances and /_nimbus/ec2/events: instances by type, architecture
// and market; state changes and spot interruptions on a timeline) and Cost (GET
// /_nimbus/ec2/meter: the meter's ledger by purchase option and type, with what-if totals).
import { h, put, live, every, query, xtext, xmembers, fmt, badge, table, card } from './lib.js';
import { bars, timeline, sparkline } from './charts.js';

// Graviton families carry a `g` after the generation digit (m7g, c6gn, t4g).
const arch = (type) => (/^[a-z]+\d+[a-z]*g[a-z]*\./.test(type) && !/^(g|p)\d/.test(type) ? 'arm64' : 'x86_64');

function groupCount(list, key) {
  const counts = new Map();
  for (const item of list) counts.set(key(item), (counts.get(key(item)) || 0) + 1);
  return [...counts.entries()].map(([label, value]) => ({ label, value }));
}

const EVENT_COLORS = { running: '#16a34a', pending: '#93c5fd', 'shutting-down': '#d97706', terminated: '#6b7280', stopped: '#6b7280', interruption: '#dc2626' };

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
    h('h2', {}, 'Timeline: state changes and spot interruptions'),
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
  const stopFeed = live({ watch: ['/_nimbus/ec2/instances', '/_nimbus/ec2/events'] }, (path, body) => {
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
        ['Peak memory', (i) => fmt.mib(i.memory_peak_mib), 'num'], ['$/h', (i) => fmt.usd(i.usd_per_hour), 'num'],
        ['', (i) => (i.market === 'spot' && i.state === 'running' ? interruptButton(i.instance_id) : '')],
      ], list, 'No instances.'));
      main.dataset.loaded = 'true';
    } else {
      const events = (body.events || []).filter((e) => e.detail && e.detail['instance-id']);
      const lanes = [...new Set(events.map((e) => e.detail['instance-id']))].slice(-16);
      const items = events.filter((e) => lanes.includes(e.detail['instance-id'])).map((e) => {
        const interrupted = /Interruption Warning/.test(e['detail-type']);
        const kind = interrupted ? 'interruption' : (e.detail.state || 'event');
        return { t: Date.parse(e.time), lane: e.detail['instance-id'], color: EVENT_COLORS[kind] || '#a855f7', cls: interrupted ? 'interruption' : kind,
          label: `${e.detail['instance-id']}: ${interrupted ? `spot interruption (${e.detail['instance-action']})` : kind}` };
      });
      put(line, timeline(items, { lanes }));
      line.dataset.interruptions = items.filter((i) => i.cls === 'interruption').map((i) => i.lane).join(' ');
    }
  });
  return () => { stopFeed(); stopActivities(); };
}

export function cost(main) {
  const cards = h('div', { class: 'cards' });
  const byMarket = h('div', { class: 'panel' });
  const byType = h('div', { class: 'panel' });
  const whatIf = h('div', { class: 'panel', id: 'what-if' });
  const ledger = h('div', { class: 'panel' });
  const source = h('p', { class: 'muted' });
  const over = h('div', { class: 'panel', id: 'cost-over-time' });
  // The metered total at each update since the page opened (the meter keeps segments, not a series).
  const totals = [];
  put(main, h('h1', {}, 'Cost'), cards, h('h2', {}, 'Metered total, as this page watched it'), over,
    h('div', { class: 'grid2' }, h('div', {}, h('h2', {}, 'By purchase option'), byMarket), h('div', {}, h('h2', {}, 'By instance type'), byType)),
    h('h2', {}, 'What if'), whatIf, h('h2', {}, 'Ledger'), ledger, source);
  return live({ watch: ['/_nimbus/ec2/meter'] }, (_, meter) => {
    const lines = meter.lines || [];
    const sum = (key) => lines.reduce((n, l) => n + (l[key] || 0), 0);
    const graviton = lines.reduce((n, l) => n + (l.graviton_usd ?? l.on_demand_usd ?? 0), 0);
    totals.push(meter.total_usd || 0);
    if (totals.length > 600) totals.shift();
    put(over, sparkline(totals, { width: 600, height: 60, title: 'metered total per update' }), h('span', { class: 'muted' }, ` ${fmt.usd(meter.total_usd)} now`));
    put(cards, card('Metered cost', fmt.usd(meter.total_usd)), card('All on-demand', fmt.usd(meter.on_demand_usd)),
      card('Instance hours', (sum('billed_seconds') / 3600).toFixed(2)), card('Since', Date.parse(meter.since) > 0 ? fmt.date(meter.since) : 'the first instance'));
    const by = (key) => {
      const m = new Map();
      for (const l of lines) m.set(l[key], (m.get(l[key]) || 0) + l.usd);
      return [...m.entries()].map(([label, value]) => ({ label, value, color: label === 'spot' ? '#d97706' : label === 'reserved' ? '#7c3aed' : '#2563eb' }));
    };
    put(byMarket, bars(by('market'), { format: fmt.usd }));
    put(byType, bars(by('instance_type'), { format: fmt.usd }));
    put(whatIf, bars([
      { label: 'as metered', value: meter.total_usd || 0, color: '#111827' },
      { label: 'all on-demand', value: sum('on_demand_usd'), color: '#2563eb' },
      { label: 'all spot', value: sum('spot_usd'), color: '#d97706' },
      { label: 'on-demand, Graviton', value: graviton, color: '#16a34a' },
    ], { format: fmt.usd }));
    put(ledger, table([['Type', (l) => l.instance_type], ['Market', (l) => l.market], ['Arch', (l) => l.architecture], ['Zone', (l) => l.availability_zone],
      ['Instances', (l) => l.instances, 'num'], ['Billed h', (l) => (l.billed_seconds / 3600).toFixed(3), 'num'], ['Cost', (l) => fmt.usd(l.usd), 'num'],
      ['On-demand', (l) => fmt.usd(l.on_demand_usd), 'num'], ['Spot', (l) => fmt.usd(l.spot_usd), 'num'],
      ['Graviton', (l) => (l.graviton_type ? `${l.graviton_type} ${fmt.usd(l.graviton_usd)}` : '–')]], lines, 'Nothing metered yet.'));
    source.textContent = `Prices: ${meter.source || '–'}. Spot: ${meter.spot_model || '–'}. ${meter.since} → ${meter.until}.`;
    main.dataset.loaded = 'true';
  });
}
