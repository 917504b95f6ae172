// Overview: what /_nimbus/health says (services, isolation, nodes, environments, memory).
import { h, put, live, card, table, fmt, badge, region } from './lib.js';

export function page(main) {
  const cards = h('div', { class: 'cards' });
  const nodes = h('div', { class: 'panel' });
  const services = h('div', { class: 'panel' });
  const regionInput = h('input', { type: 'text', value: region(), size: 12, 'aria-label': 'region' });
  regionInput.addEventListener('change', () => localStorage.setItem('nimbus.region', regionInput.value.trim() || 'us-east-1'));
  put(main, h('h1', {}, 'Overview'), cards, h('h2', {}, 'Nodes'), nodes, h('h2', {}, 'Services'), services,
    h('p', { class: 'muted' }, 'Region the console addresses: ', regionInput));
  const show = (health) => {
    const env = health.environments || {};
    put(cards,
      card('Status', health.status || '–', health.status === 'ready' ? 'ok' : 'bad'),
      card('Version', health.version || '–'),
      card('Isolation', health.isolation || '–'),
      card('Network', health.network || '–'),
      card('Database', health.database || '–'),
      card('Environments', fmt.num(env.environments)),
      card('Busy', fmt.num(env.busy)),
      card('Memory in use', fmt.mib(env.memory_mb)),
      card('Instances', health.instances === null || health.instances === undefined ? 'none' : fmt.num(health.instances)));
    const list = health.nodes && health.nodes.length ? health.nodes : [{ name: health.node, address: location.host, alive: true, heartbeat_age_ms: 0 }];
    put(nodes, table([
      ['Node', (n) => n.name], ['Address', (n) => n.address || '–'],
      ['State', (n) => badge(n.alive ? 'Active' : 'gone')], ['Heartbeat', (n) => `${Math.round((n.heartbeat_age_ms || 0) / 1000)} s ago`],
    ], list));
    put(services, h('div', { class: 'legend' }, (health.services || []).map((name) => h('span', { class: 'badge' }, name))));
    main.dataset.loaded = 'true';
  };
  return live({ watch: ['/_nimbus/health'] }, (_, body) => show(body));
}
