// Stacks, through CloudFormation's own API (DescribeStacks, DescribeStackResources,
// DescribeStackEvents), refreshed every three seconds while the page is open.
import { h, put, every, query, xtext, xmembers, fmt, badge, table, errorBox } from './lib.js';
import { timeline } from './charts.js';

const VERSION = '2010-05-15';
const REFRESH_MS = 3000;

export function list(main) {
  const panel = h('div', { class: 'panel' });
  put(main, h('h1', {}, 'Stacks'), panel);
  return every(REFRESH_MS, async () => {
    const doc = await query('cloudformation', VERSION, 'DescribeStacks').catch((error) => { put(panel, errorBox(error)); return null; });
    if (!doc) return;
    const stacks = xmembers(doc, 'Stacks').map((m) => ({
      name: xtext(m, 'StackName'), status: xtext(m, 'StackStatus'), created: xtext(m, 'CreationTime'),
      updated: xtext(m, 'LastUpdatedTime'), reason: xtext(m, 'StackStatusReason'),
    }));
    put(panel, table([['Stack', (s) => h('a', { href: `#/stacks/${encodeURIComponent(s.name)}` }, s.name)], ['Status', (s) => badge(s.status)],
      ['Created', (s) => fmt.date(s.created)], ['Updated', (s) => fmt.date(s.updated)], ['Reason', (s) => s.reason]], stacks, 'No stacks.'));
    main.dataset.loaded = 'true';
  });
}

export function detail(main, name) {
  const head = h('h1', {}, name);
  const resources = h('div', { class: 'panel' });
  const outputs = h('div', { class: 'panel' });
  const line = h('div', { class: 'panel' });
  const events = h('div', { class: 'panel' });
  put(main, head, h('h2', {}, 'Resources'), resources, h('h2', {}, 'Outputs'), outputs,
    h('h2', {}, 'Last deployment'), line, events);
  return every(REFRESH_MS, async () => {
    const [stackDoc, resourceDoc, eventDoc] = await Promise.all([
      query('cloudformation', VERSION, 'DescribeStacks', { StackName: name }),
      query('cloudformation', VERSION, 'DescribeStackResources', { StackName: name }),
      query('cloudformation', VERSION, 'DescribeStackEvents', { StackName: name }),
    ]);
    const stack = xmembers(stackDoc, 'Stacks')[0];
    put(head, name, ' ', stack ? badge(xtext(stack, 'StackStatus')) : '');
    const rows = xmembers(resourceDoc, 'StackResources').map((m) => ({
      logical: xtext(m, 'LogicalResourceId'), physical: xtext(m, 'PhysicalResourceId'), type: xtext(m, 'ResourceType'),
      status: xtext(m, 'ResourceStatus'), reason: xtext(m, 'ResourceStatusReason'),
    }));
    put(resources, table([['Logical id', (r) => r.logical], ['Type', (r) => r.type], ['Status', (r) => badge(r.status)],
      ['Physical id', (r) => (r.type === 'AWS::Lambda::Function' ? h('a', { href: `#/functions/${encodeURIComponent(r.physical)}` }, r.physical) : r.physical)],
      ['Reason', (r) => r.reason]], rows, 'No resources.'));
    const outs = stack ? xmembers(stack, 'Outputs').map((m) => ({ key: xtext(m, 'OutputKey'), value: xtext(m, 'OutputValue'), description: xtext(m, 'Description') })) : [];
    put(outputs, table([['Key', (o) => o.key], ['Value', (o) => o.value], ['Description', (o) => o.description]], outs, 'No outputs.'));
    // Events come newest first; the last deployment starts at the newest stack-level *_IN_PROGRESS.
    const all = xmembers(eventDoc, 'StackEvents').map((m) => ({
      t: Date.parse(xtext(m, 'Timestamp')), logical: xtext(m, 'LogicalResourceId'), status: xtext(m, 'ResourceStatus'),
      type: xtext(m, 'ResourceType'), reason: xtext(m, 'ResourceStatusReason'),
    }));
    const start = all.findIndex((e) => e.type === 'AWS::CloudFormation::Stack' && /_IN_PROGRESS$/.test(e.status) && !/CLEANUP|ROLLBACK/.test(e.status));
    const last = (start >= 0 ? all.slice(0, start + 1) : all).reverse();
    const lanes = [...new Set(last.map((e) => e.logical))].slice(0, 30);
    const color = (s) => (/FAILED|ROLLBACK/.test(s) ? '#dc2626' : /COMPLETE$/.test(s) ? '#16a34a' : '#2563eb');
    put(line, timeline(last.filter((e) => lanes.includes(e.logical)).map((e) => ({ t: e.t, lane: e.logical, color: color(e.status), label: `${e.logical} ${e.status}` })), { lanes }));
    put(events, table([['Time', (e) => fmt.time(e.t)], ['Resource', (e) => e.logical], ['Status', (e) => badge(e.status)], ['Reason', (e) => e.reason]], last.slice().reverse()));
    main.dataset.loaded = 'true';
  });
}
