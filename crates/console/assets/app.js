// The console's router: each page is a hash route (#/functions/name …), so every view can be
// bookmarked and shared. A page renders into <main> and returns a function that stops its live
// feed when the route changes.
import { h, put, errorBox } from './lib.js';
import * as overview from './overview.js';
import * as functions from './functions.js';
import * as stacks from './stacks.js';
import * as batch from './batch.js';
import * as capacity from './capacity.js';
import * as cost from './cost.js';
import * as states from './states.js';
import * as streams from './streams.js';

const routes = [
  [/^\/?$/, 'overview', overview.page],
  [/^\/functions$/, 'functions', functions.list],
  [/^\/functions\/([^/]+)$/, 'functions', functions.detail],
  [/^\/streams$/, 'streams', streams.page],
  [/^\/stacks$/, 'stacks', stacks.list],
  [/^\/stacks\/([^/]+)$/, 'stacks', stacks.detail],
  [/^\/batch$/, 'batch', batch.list],
  [/^\/batch\/jobs\/([^/]+)$/, 'batch', batch.job],
  [/^\/capacity$/, 'capacity', capacity.page],
  [/^\/cost$/, 'cost', cost.page],
  [/^\/states$/, 'states', states.list],
  [/^\/states\/([^/]+)$/, 'states', states.machine],
  [/^\/states\/([^/]+)\/([^/]+)$/, 'states', states.execution],
];

let stop = null;

async function render() {
  if (stop) { try { stop(); } catch (_) { /* already stopped */ } stop = null; }
  const path = (location.hash || '#/').slice(1).split('?')[0];
  // Each page draws into an element of its own: a page still loading when the next one opens
  // draws into its element, no longer in the document, and is stopped as soon as it returns.
  const old = document.getElementById('page');
  const main = old.cloneNode(false);
  // Set again by the new page once its data has arrived (tests and benchmarks wait for it).
  delete main.dataset.loaded;
  old.replaceWith(main);
  document.getElementById('nav').classList.remove('open');
  for (const [pattern, section, page] of routes) {
    const match = path.match(pattern);
    if (!match) continue;
    for (const link of document.querySelectorAll('#nav a')) link.classList.toggle('active', link.dataset.route === section);
    const args = match.slice(1).map(decodeURIComponent);
    try {
      const stopping = (await page(main, ...args)) || null;
      if (main.isConnected) stop = stopping;
      else if (stopping) stopping();
    } catch (error) {
      put(main, h('h1', {}, 'Something went wrong'), errorBox(error));
    }
    return;
  }
  put(main, h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '#/' }, 'Back to the overview')));
}

document.getElementById('menu').addEventListener('click', () => document.getElementById('nav').classList.toggle('open'));
window.addEventListener('hashchange', render);
// Leaving the page ends its feed at once (a page kept in the back/forward cache would otherwise
// hold a connection, and browsers allow only six per host).
window.addEventListener('pagehide', () => { if (stop) { stop(); stop = null; } });
window.addEventListener('pageshow', (event) => { if (event.persisted) render(); });
render();
