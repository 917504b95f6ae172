// State machines, through Step Functions' API: machines, their executions, and one execution's
// states drawn as the machine's graph coloured by how far each got. Refreshed every two seconds.
import { h, put, every, json, fmt, badge, table, errorBox } from './lib.js';
import { stateGraph } from './charts.js';

const T = 'AWSStepFunctions.';

export function list(main) {
  const panel = h('div', { class: 'panel' });
  put(main, h('h1', {}, 'State machines'), panel);
  return every(3000, async () => {
    const answer = await json('states', `${T}ListStateMachines`, {}).catch((error) => { put(panel, errorBox(error)); return null; });
    if (!answer) return;
    put(panel, table([['State machine', (m) => h('a', { href: `#/states/${encodeURIComponent(m.stateMachineArn)}` }, m.name)],
      ['Type', (m) => m.type], ['Created', (m) => fmt.date(m.creationDate * 1000)]], answer.stateMachines || [], 'No state machines.'));
    main.dataset.loaded = 'true';
  });
}

export function machine(main, arn) {
  const graph = h('div', { class: 'panel' });
  const executions = h('div', { class: 'panel' });
  put(main, h('h1', {}, arn.split(':').pop()), graph, h('h2', {}, 'Executions'), executions);
  json('states', `${T}DescribeStateMachine`, { stateMachineArn: arn })
    .then((d) => put(graph, stateGraph(JSON.parse(d.definition))))
    .catch((error) => put(graph, errorBox(error)));
  return every(2000, async () => {
    const answer = await json('states', `${T}ListExecutions`, { stateMachineArn: arn, maxResults: 100 });
    put(executions, table([['Execution', (e) => h('a', { href: `#/states/${encodeURIComponent(arn)}/${encodeURIComponent(e.executionArn)}` }, e.name)],
      ['Status', (e) => badge(e.status)], ['Started', (e) => fmt.date(e.startDate * 1000)], ['Stopped', (e) => (e.stopDate ? fmt.date(e.stopDate * 1000) : '–')]],
    answer.executions || [], 'No executions.'));
    main.dataset.loaded = 'true';
  });
}

// Each state's latest status from the execution's history.
function statusesOf(events) {
  const status = {};
  for (const e of events) {
    const entered = e.stateEnteredEventDetails?.name;
    const exited = e.stateExitedEventDetails?.name;
    if (entered) status[entered] = 'RUNNING';
    if (exited) status[exited] = 'SUCCEEDED';
    if (/Failed$|TimedOut$|Aborted$/.test(e.type) && !/^Execution/.test(e.type)) {
      const current = Object.keys(status).find((k) => status[k] === 'RUNNING');
      if (current) status[current] = 'FAILED';
    }
  }
  return status;
}

export function execution(main, arn, executionArn) {
  const head = h('h1', {}, executionArn.split(':').pop());
  const graph = h('div', { class: 'panel', id: 'execution-graph' });
  const history = h('div', { class: 'panel' });
  put(main, head, graph, h('h2', {}, 'History'), history);
  let definition = null;
  return every(2000, async () => {
    if (!definition) definition = JSON.parse((await json('states', `${T}DescribeStateMachine`, { stateMachineArn: arn })).definition);
    const [described, hist] = await Promise.all([
      json('states', `${T}DescribeExecution`, { executionArn }),
      json('states', `${T}GetExecutionHistory`, { executionArn, maxResults: 1000 }),
    ]);
    put(head, executionArn.split(':').pop(), ' ', badge(described.status));
    const status = statusesOf(hist.events || []);
    put(graph, stateGraph(definition, (name) => status[name] || ''));
    put(history, table([['#', (e) => e.id], ['Time', (e) => fmt.time(e.timestamp * 1000)], ['Event', (e) => e.type],
      ['State', (e) => e.stateEnteredEventDetails?.name || e.stateExitedEventDetails?.name || '']], hist.events || []));
    main.dataset.loaded = 'true';
  });
}
