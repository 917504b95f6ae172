// Helpers shared by every page: element building, nimbus's /_nimbus/ paths, the AWS APIs, the
// live feed (server-sent events from /_nimbus/events) and formatting.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else el.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function region() {
  return localStorage.getItem('nimbus.region') || 'us-east-1';
}

// Requests addressed to an AWS service carry its SigV4 credential scope (nimbus routes by it;
// it checks signatures only when auth is on).
function scope(service) {
  return `AWS4-HMAC-SHA256 Credential=console/20240101/${region()}/${service}/aws4_request, SignedHeaders=host, Signature=0`;
}

async function answer(response) {
  const text = await response.text();
  let body = text;
  try { body = text ? JSON.parse(text) : {}; } catch (_) { /* not JSON */ }
  if (!response.ok) {
    const message = (body && (body.message || body.Message || (body.error && body.error.message))) || text || response.statusText;
    const error = new Error(`${response.status}: ${message}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

export async function getJson(path) {
  return answer(await fetch(path, { headers: { accept: 'application/json' } }));
}

// REST-JSON APIs (Lambda, Batch).
export async function rest(service, method, path, body, extra = {}) {
  const init = { method, headers: { authorization: scope(service), 'x-nimbus-console': '1', ...extra } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers['content-type'] = 'application/json';
  }
  return answer(await fetch(path, init));
}

// JSON 1.0/1.1 APIs (Step Functions, SQS, Logs …).
export async function json(service, target, body = {}, version = '1.0') {
  return answer(await fetch('/', {
    method: 'POST',
    headers: { authorization: scope(service), 'x-amz-target': target, 'content-type': `application/x-amz-json-${version}` },
    body: JSON.stringify(body),
  }));
}

// Query APIs (CloudFormation, Auto Scaling): an XML document.
export async function query(service, version, action, params = {}) {
  const form = new URLSearchParams({ Action: action, Version: version, ...params });
  const response = await fetch('/', {
    method: 'POST',
    headers: { authorization: scope(service), 'content-type': 'application/x-www-form-urlencoded' },
    body: form.toString(),
  });
  const text = await response.text();
  const doc = new DOMParser().parseFromString(text, 'application/xml');
  if (!response.ok) throw new Error(`${response.status}: ${xtext(doc, 'Message') || text}`);
  return doc;
}

export function xtext(node, tag) {
  const found = node.getElementsByTagName(tag)[0];
  return found ? found.textContent : '';
}

export function xmembers(node, listTag) {
  const list = node.getElementsByTagName(listTag)[0];
  return list ? [...list.children].filter((c) => c.tagName === 'member') : [];
}

// Server-sent events: `watch` paths are pushed again whenever they change, `logs` streams a log
// group. Returns a function that closes the feed.
export function live({ watch = [], logs, stream }, onUpdate, onLogs) {
  const params = new URLSearchParams();
  for (const path of watch) params.append('watch', path);
  if (logs) params.append('logs', logs);
  if (stream) params.append('stream', stream);
  const source = new EventSource(`/_nimbus/events?${params}`);
  const dot = document.getElementById('live');
  source.onopen = () => dot && (dot.className = 'live on');
  source.onerror = () => dot && (dot.className = 'live off');
  source.addEventListener('update', (event) => {
    const { path, body } = JSON.parse(event.data);
    onUpdate && onUpdate(path, body);
  });
  source.addEventListener('logs', (event) => onLogs && onLogs(JSON.parse(event.data).events));
  return () => { source.close(); dot && (dot.className = 'live off'); };
}

export const fmt = {
  num: (n) => (n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US')),
  ms: (n) => (n === null || n === undefined ? '–' : `${Number(n) < 10 ? Number(n).toFixed(2) : Math.round(n)} ms`),
  usd: (n) => {
    if (n === null || n === undefined) return '–';
    const v = Number(n);
    // Fractions of a cent keep two significant digits (a test workload costs micro-dollars).
    if (v > 0 && v < 0.0001) return `$${v.toFixed(Math.min(10, 1 - Math.floor(Math.log10(v))))}`;
    return `$${v.toFixed(v < 1 ? 4 : 2)}`;
  },
  mib: (n) => (n === null || n === undefined ? '–' : `${Number(n).toLocaleString('en-US')} MiB`),
  time: (t) => (t ? new Date(typeof t === 'number' ? t : Date.parse(t)).toLocaleTimeString() : '–'),
  date: (t) => (t ? new Date(typeof t === 'number' ? t : Date.parse(t)).toLocaleString() : '–'),
};

export function badge(text) {
  return h('span', { class: `badge ${String(text).replace(/[^A-Za-z_-]/g, '')}` }, text);
}

export function errorBox(error) {
  return h('div', { class: 'error-box' }, String(error && error.message ? error.message : error));
}

// A table from rows of objects; `columns` are [label, value(row) → text|Node, class?].
export function table(columns, rows, empty = 'Nothing yet.') {
  if (!rows.length) return h('p', { class: 'muted' }, empty);
  return h('table', {},
    h('thead', {}, h('tr', {}, columns.map(([label, , cls]) => h('th', { class: cls }, label)))),
    h('tbody', {}, rows.map((row) => h('tr', {}, columns.map(([, value, cls]) => h('td', { class: cls }, value(row)))))));
}

export function card(label, value, cls) {
  const long = typeof value === 'string' && value.length > 16 ? 'long' : '';
  return h('div', { class: 'card' }, h('div', { class: 'k' }, label), h('div', { class: `v ${cls || ''} ${long}` }, value));
}

export function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v ?? '–')]));
}

// Replaces a container's content.
export function put(container, ...children) {
  container.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

// Runs `work` now and again `ms` after each run ends (for APIs without a live feed; never more
// often than the feed's once a second). Returns a function that stops it.
export function every(ms, work) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    try { await work(); } catch (error) { console.warn(error); }
    if (!stopped) timer = setTimeout(tick, Math.max(ms, 1000));
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}
