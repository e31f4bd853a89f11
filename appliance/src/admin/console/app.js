// The Outpost console: one page, every view drawn from the JSON API under /v1.
// Signed in, the browser holds an HttpOnly session cookie; every change sends the
// session's CSRF token in X-CSRF-Token. Nothing here is fetched from anywhere else.
'use strict';

// `page` counts the pages drawn: a timer asked for by a page that is no longer shown
// is not started (its data arrived after the user moved on).
const state = { csrf: null, timers: [], page: 0 };
const SVG = 'http://www.w3.org/2000/svg';

// ---- small helpers ------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'text') el.textContent = value;
    else el.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, value);
  for (const child of children) el.append(child);
  return el;
}

function field(label, input) {
  return h('label', {}, label, input);
}

function notice(text, kind) {
  const box = document.getElementById('notice');
  box.replaceChildren(text ? h('p', { class: kind || 'ok' }, text) : '');
}

function fail(error) {
  notice(error.message || String(error), 'error');
}

function every(ms, fn, page) {
  if (page !== undefined && page !== state.page) return;
  state.timers.push(setInterval(fn, ms));
}

// A box that scrolls a wide table sideways; focusable, so the keyboard scrolls it too.
function scroller(label, table) {
  return h('div', { class: 'table-wrap', tabindex: 0, role: 'region', 'aria-label': label }, table);
}

function table(headers, rows, label) {
  return scroller(label, 
    h('table', {},
      h('thead', {}, h('tr', {}, headers.map((name) =>
        h('th', { scope: 'col', class: name.num ? 'num' : null }, name.text || name)))),
      h('tbody', {}, rows.length ? rows
        : h('tr', {}, h('td', { colspan: headers.length, class: 'muted' }, 'Nothing yet.')))));
}

function num(value) {
  return h('td', { class: 'num' }, value === null || value === undefined ? '–' : value);
}

function percent(part, whole) {
  return whole ? `${(100 * part / whole).toFixed(1)} %` : '–';
}

function when(ms) {
  return new Date(ms).toLocaleTimeString();
}

// ---- the API --------------------------------------------------------------------------

async function api(method, path, body, contentType) {
  const headers = {};
  if (method !== 'GET') headers['X-CSRF-Token'] = state.csrf || '';
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = contentType || 'application/json';
    payload = contentType ? body : JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = { error: text }; }
  if (response.status === 401 && path !== '/ui/session') {
    state.csrf = null;
    signInPage();
    throw new Error('Signed out: sign in again.');
  }
  if (!response.ok) throw new Error((data && data.error) || `${response.status} ${response.statusText}`);
  return data;
}

const enc = encodeURIComponent;

// ---- sign-in --------------------------------------------------------------------------

function signInPage() {
  stopTimers();
  document.getElementById('nav').hidden = true;
  const token = h('input', { type: 'password', name: 'token', id: 'token', autocomplete: 'current-password', required: true });
  const form = h('form', { class: 'stack', onsubmit: async (event) => {
    event.preventDefault();
    try {
      const signed = await api('POST', '/ui/session', { token: token.value });
      state.csrf = signed.csrf;
      notice('');
      start();
    } catch (error) { fail(error); }
  } },
  field('Admin token', token),
  h('p', { class: 'muted' }, 'The token is in admin.token in the node\u2019s data directory.'),
  h('div', {}, h('button', { type: 'submit' }, 'Sign in')));
  show('Sign in', form);
  token.focus();
}

async function signOut() {
  try { await api('DELETE', '/ui/session'); } catch (_) { /* signed out either way */ }
  state.csrf = null;
  location.hash = '#/';
  notice('Signed out.');
  signInPage();
}

// ---- routing --------------------------------------------------------------------------

const pages = [
  [/^#\/?$/, dashboardPage],
  [/^#\/log$/, logPage],
  [/^#\/zones$/, zonesPage],
  [/^#\/zones\/(.+)$/, zonePage],
  [/^#\/cluster$/, clusterPage],
  [/^#\/lite$/, litePage],
  [/^#\/plugins$/, pluginsPage],
];

function show(title, ...content) {
  document.title = `${title} · Outpost`;
  const main = document.getElementById('main');
  main.replaceChildren(h('h1', {}, title), ...content);
}

function stopTimers() {
  state.timers.forEach(clearInterval);
  state.timers = [];
  state.page += 1;
}

function route() {
  stopTimers();
  if (!state.csrf) return signInPage();
  const hash = location.hash || '#/';
  for (const link of document.querySelectorAll('#nav a')) {
    const target = link.getAttribute('href');
    const current = target === '#/' ? hash === '#/' || hash === '#' : hash.startsWith(target);
    if (current) link.setAttribute('aria-current', 'page'); else link.removeAttribute('aria-current');
  }
  for (const [pattern, page] of pages) {
    const match = hash.match(pattern);
    if (!match) continue;
    let args;
    try { args = match.slice(1).map(decodeURIComponent); } catch (_) { break; }
    return page(...args).catch(fail);
  }
  show('Not found', h('p', {}, 'No such page.'));
}

function start() {
  document.getElementById('nav').hidden = false;
  route();
  document.getElementById('main').focus();
}

// ---- dashboard ------------------------------------------------------------------------

function chart(points, minutes, since, value, label, cls) {
  const width = 600, height = 150;
  const max = Math.max(...points.map(value), 0);
  const scale = max > 0 ? max : 1;
  const slot = width / minutes;
  const bars = points.map((p) => {
    const v = value(p);
    const tall = Math.max(v > 0 ? 1 : 0, (height - 2) * v / scale);
    return svg('rect', { class: cls, x: ((p.minute - since) * slot).toFixed(2), y: (height - tall).toFixed(2),
      width: Math.max(1, slot - 1).toFixed(2), height: tall.toFixed(2) });
  });
  const peak = max.toFixed(max < 10 ? 1 : 0);
  return h('figure', {},
    h('figcaption', {}, label),
    svg('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: 'none',
      role: 'img', 'aria-label': `${label}, one bar per minute: peak ${peak} over ${points.length} minutes with queries` },
    svg('line', { class: 'axis', x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5 }), ...bars),
    h('div', { class: 'scale' }, h('span', {}, minutes >= 1440 ? '24 h ago' : '1 h ago'),
      h('span', {}, `peak ${peak}`), h('span', {}, 'now')));
}

function topTable(title, entries) {
  return h('section', { class: 'panel' }, h('h2', {}, title),
    table(['Key', { text: 'Queries', num: true }],
      entries.map((entry) => h('tr', {}, h('td', { class: 'mono' }, entry.key), num(entry.count))), title));
}

async function dashboardPage() {
  const drawn = state.page;
  const select = h('select', { id: 'window' },
    h('option', { value: '1h' }, 'Last hour'), h('option', { value: '24h' }, 'Last 24 hours'));
  const body = h('div', {});
  const draw = async () => {
    const stats = await api('GET', `/v1/querylog/stats?window=${select.value}`);
    const minutes = select.value === '24h' ? 1440 : 60;
    const answered = stats.cached + stats.forwarded;
    // The last whole minute: the current one is still being counted.
    const lastMinute = stats.series.find((p) => p.minute === Math.floor(Date.now() / 60000) - 1);
    const tiles = [
      ['Queries', stats.queries],
      ['Queries per second (last minute)', lastMinute ? (lastMinute.queries / 60).toFixed(1) : '0'],
      ['Cache hit rate', percent(stats.cached, answered)],
      ['Blocked', percent(stats.blocked, stats.queries)],
      ['Failed', percent(stats.failed, stats.queries)],
      ['Upstream latency (mean)', stats.forwarded ? `${(stats.upstream_us / stats.forwarded / 1000).toFixed(1)} ms` : '–'],
    ];
    const series = stats.series;
    body.replaceChildren(
      h('div', { class: 'tiles' }, tiles.map(([label, value]) =>
        h('div', { class: 'tile' }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value)))),
      h('div', { class: 'charts' },
        chart(series, minutes, stats.since_minute, (p) => p.queries / 60, 'Queries per second', 'bar'),
        chart(series, minutes, stats.since_minute, (p) => (p.queries ? 100 * p.blocked / p.queries : 0), 'Blocked share (%)', 'blocked'),
        chart(series, minutes, stats.since_minute, (p) => (p.cached + p.forwarded ? 100 * p.cached / (p.cached + p.forwarded) : 0), 'Cache hit rate (%)', 'bar'),
        chart(series, minutes, stats.since_minute, (p) => (p.forwarded ? p.upstream_us / p.forwarded / 1000 : 0), 'Upstream latency (ms)', 'bar')),
      h('div', { class: 'tops' },
        topTable('Top clients', stats.top_clients),
        topTable('Top names', stats.top_names),
        topTable('Top blocked names', stats.top_blocked)));
  };
  select.addEventListener('change', () => draw().catch(fail));
  show('Dashboard', h('form', { class: 'inline', onsubmit: (e) => e.preventDefault() }, field('Window', select)), body);
  await draw();
  every(10000, () => draw().catch(fail), drawn);
}

// ---- query log ------------------------------------------------------------------------

function logRow(record) {
  const source = record.verdict
    ? h('span', { class: `tag ${record.verdict}` }, `${record.verdict} by ${record.plugin}`)
    : h('span', { class: 'tag' }, record.source);
  return h('tr', { 'data-seq': record.seq },
    h('td', {}, when(record.time_ms)), h('td', { class: 'mono' }, record.client),
    h('td', { class: 'mono' }, record.name), h('td', {}, record.type),
    h('td', { class: 'hide-narrow' }, record.transport), h('td', {}, record.rcode), h('td', {}, source),
    num(`${(record.latency_us / 1000).toFixed(2)} ms`));
}

async function logPage() {
  const inputs = {
    client: h('input', { name: 'client', placeholder: '192.0.2.10' }),
    name: h('input', { name: 'name', placeholder: 'example' }),
    type: h('input', { name: 'type', placeholder: 'A', size: 6 }),
    rcode: h('input', { name: 'rcode', placeholder: 'NXDOMAIN', size: 10 }),
    source: h('select', { name: 'source' }, ['', 'zone', 'cache', 'upstream', 'plugin', 'block', 'answer',
      'redirect', 'fail', 'refused', 'rate-limited', 'early'].map((v) => h('option', { value: v }, v || 'any'))),
  };
  const live = h('input', { type: 'checkbox', id: 'live', checked: true });
  const rows = h('tbody', {});
  const summary = h('p', { class: 'muted' });
  // The server's cursor: everything up to it has been seen (matching or not).
  let cursor = 0;
  let tailing = false;
  const query = () => Object.entries(inputs).filter(([, el]) => el.value.trim())
    .map(([key, el]) => `${key}=${enc(el.value.trim())}`).join('&');
  const load = async () => {
    const found = await api('GET', `/v1/querylog?limit=200&${query()}`);
    summary.textContent = `Keeping ${found.mode === 'all' ? 'every query' : found.mode} (${found.capacity} at most)${found.anonymize_clients ? ', clients anonymised' : ''}.`;
    cursor = found.cursor;
    rows.replaceChildren(...found.records.map(logRow));
  };
  // One poll at a time; a full page means more came than a page holds, and the next
  // poll goes on from there (the view is behind, never missing rows).
  const tail = async () => {
    if (!live.checked || tailing) return;
    tailing = true;
    try {
      const found = await api('GET', `/v1/querylog?limit=200&after=${cursor}&${query()}`);
      cursor = found.cursor;
      if (!found.records.length) return;
      rows.prepend(...found.records.map(logRow));
      while (rows.children.length > 500) rows.lastChild.remove();
    } finally { tailing = false; }
  };
  const form = h('form', { class: 'inline', role: 'search', onsubmit: (e) => { e.preventDefault(); load().catch(fail); } },
    field('Client', inputs.client), field('Name contains', inputs.name), field('Type', inputs.type),
    field('Rcode', inputs.rcode), field('Answered by', inputs.source),
    h('button', { type: 'submit' }, 'Search'),
    h('label', { class: 'check', for: 'live' }, live, 'Live'));
  show('Query log', form, summary, scroller('Queries', h('table', { id: 'log' },
    h('thead', {}, h('tr', {}, ['Time', 'Client', 'Name', 'Type', 'Transport', 'Rcode', 'Answered by', 'Latency']
      .map((name, i) => h('th', { scope: 'col', class: i === 4 ? 'hide-narrow' : (i === 7 ? 'num' : null) }, name)))),
    rows)));
  const drawn = state.page;
  await load();
  every(1000, () => tail().catch(fail), drawn);
}

// ---- zones and records ---------------------------------------------------------------

async function zonesPage() {
  const zones = await api('GET', '/v1/zones');
  const filter = h('input', { type: 'search', id: 'zone-filter' });
  const body = h('tbody', {});
  const draw = () => body.replaceChildren(...zones
    .filter((zone) => zone.origin.includes(filter.value.trim().toLowerCase()))
    .map((zone) => h('tr', {},
      h('td', { class: 'mono' }, h('a', { href: `#/zones/${enc(zone.origin)}` }, zone.origin)),
      num(zone.records), num(zone.serial),
      h('td', {}, h('button', { type: 'button', class: 'danger', 'aria-label': `Delete zone ${zone.origin}`,
        onclick: async () => {
          if (!confirm(`Delete the zone ${zone.origin} and all its records?`)) return;
          try { await api('DELETE', `/v1/zones/${enc(zone.origin)}`); notice(`Deleted ${zone.origin}.`); route(); } catch (e) { fail(e); }
        } }, 'Delete')))));
  filter.addEventListener('input', draw);
  draw();
  const origin = h('input', { name: 'origin', required: true, placeholder: 'site.internal.' });
  const create = h('form', { class: 'inline', onsubmit: async (e) => {
    e.preventDefault();
    try { await api('POST', '/v1/zones', { origin: origin.value }); notice(`Created ${origin.value}.`); route(); } catch (error) { fail(error); }
  } }, field('New zone', origin), h('button', { type: 'submit' }, 'Create'));
  const importOrigin = h('input', { name: 'import-origin', required: true, placeholder: 'site.internal.' });
  const text = h('textarea', { name: 'zone-file', required: true, spellcheck: 'false' });
  const file = h('input', { type: 'file', name: 'zone-file-upload', accept: '.zone,.txt,.db,text/plain' });
  file.addEventListener('change', async () => { if (file.files[0]) text.value = await file.files[0].text(); });
  const importForm = h('form', { class: 'stack', onsubmit: async (e) => {
    e.preventDefault();
    try {
      const done = await api('PUT', `/v1/zones/${enc(importOrigin.value)}`, text.value, 'text/plain');
      notice(`Imported ${done.records} records into ${done.origin}.`);
      route();
    } catch (error) { fail(error); }
  } }, field('Zone', importOrigin), field('Master file (replaces the zone)', text), field('Or read a file', file),
  h('div', {}, h('button', { type: 'submit' }, 'Import')));
  show('Zones', create, h('form', { class: 'inline', role: 'search', onsubmit: (e) => e.preventDefault() }, field('Search zones', filter)),
    scroller('Zones', h('table', {}, h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Zone'), h('th', { scope: 'col', class: 'num' }, 'Records'),
      h('th', { scope: 'col', class: 'num' }, 'Serial'), h('th', { scope: 'col' }, 'Actions'))), body)),
    h('h2', {}, 'Import a zone file'), importForm);
}

async function zonePage(origin) {
  const records = await api('GET', `/v1/zones/${enc(origin)}/records`);
  const filter = h('input', { type: 'search', id: 'record-filter' });
  const body = h('tbody', {});
  const inputs = {
    name: h('input', { name: 'name', required: true, placeholder: `www.${origin}` }),
    type: h('input', { name: 'type', required: true, placeholder: 'A', size: 6 }),
    ttl: h('input', { name: 'ttl', type: 'number', min: 0, placeholder: '3600', size: 6 }),
    data: h('input', { name: 'data', required: true, placeholder: '192.0.2.10' }),
  };
  const edit = (record) => {
    inputs.name.value = record.name; inputs.type.value = record.type;
    inputs.ttl.value = record.ttl; inputs.data.value = record.data;
    inputs.data.focus();
  };
  const draw = () => body.replaceChildren(...records
    .filter((r) => `${r.name} ${r.type} ${r.data}`.toLowerCase().includes(filter.value.trim().toLowerCase()))
    .map((record) => h('tr', {},
      h('td', { class: 'mono' }, record.name), num(record.ttl), h('td', {}, record.type),
      h('td', { class: 'mono' }, record.data),
      h('td', {},
        h('button', { type: 'button', class: 'secondary', 'aria-label': `Edit ${record.name} ${record.type} ${record.data}`, onclick: () => edit(record) }, 'Edit'), ' ',
        h('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${record.name} ${record.type} ${record.data}`,
          onclick: async () => {
            try {
              await api('DELETE', `/v1/records?name=${enc(record.name)}&type=${enc(record.type)}&data=${enc(record.data)}`);
              notice(`Deleted ${record.name} ${record.type} ${record.data}.`);
              route();
            } catch (e) { fail(e); }
          } }, 'Delete')))));
  filter.addEventListener('input', draw);
  draw();
  const body_ = () => {
    const request = { name: inputs.name.value, type: inputs.type.value.toUpperCase(), data: inputs.data.value };
    if (inputs.ttl.value !== '') request.ttl = Number(inputs.ttl.value);
    return request;
  };
  const add = h('form', { class: 'inline', id: 'add-record', onsubmit: async (e) => {
    e.preventDefault();
    try {
      const request = body_();
      await api('POST', '/v1/records', request);
      notice(`Added ${request.name} ${request.type} ${request.data}.`);
      route();
    } catch (error) { fail(error); }
  } }, field('Name', inputs.name), field('Type', inputs.type), field('TTL', inputs.ttl), field('Data', inputs.data),
  h('button', { type: 'submit' }, 'Add record'),
  h('button', { type: 'button', class: 'secondary', onclick: async () => {
    try {
      const request = body_();
      await api('PUT', '/v1/records', { name: request.name, type: request.type, ttl: request.ttl, data: [request.data] });
      notice(`Replaced the ${request.type} records of ${request.name}.`);
      route();
    } catch (error) { fail(error); }
  } }, 'Replace the RRset'));
  show(`Zone ${origin}`, h('p', {}, h('a', { href: '#/zones' }, '\u2190 All zones'), ' · ',
    h('a', { href: `/v1/zones/${enc(origin)}/export`, download: `${origin}zone` }, 'Export as a master file')),
  add, h('form', { class: 'inline', role: 'search', onsubmit: (e) => e.preventDefault() }, field('Search records', filter)),
  scroller('Records', h('table', { id: 'records' }, h('thead', {}, h('tr', {},
    ['Name', 'TTL', 'Type', 'Data', 'Actions'].map((name, i) => h('th', { scope: 'col', class: i === 1 ? 'num' : null }, name)))), body)));
}

// ---- cluster --------------------------------------------------------------------------

async function clusterPage() {
  const cluster = await api('GET', '/v1/cluster');
  const ticket = h('div', {});
  const rows = cluster.nodes.map((node) => h('tr', {},
    num(node.id), h('td', { class: 'mono' }, node.address),
    h('td', {}, node.leader ? h('span', { class: 'tag good' }, 'leader') : (node.voter ? 'voter' : 'learner')),
    num(node.lag), num(node.last_contact_ms === null ? null : `${node.last_contact_ms} ms`),
    h('td', {}, node.healthy === null ? '–' : h('span', { class: `tag ${node.healthy ? 'good' : 'bad'}` }, node.healthy ? 'healthy' : 'unhealthy')),
    h('td', {}, h('button', { type: 'button', class: 'danger', 'aria-label': `Remove node ${node.id}`, onclick: async () => {
      if (!confirm(`Remove node ${node.id} (${node.address}) from the cluster?`)) return;
      try { await api('DELETE', `/v1/cluster/nodes/${node.id}`); notice(`Removed node ${node.id}.`); route(); } catch (e) { fail(e); }
    } }, 'Remove'))));
  show('Cluster',
    h('div', { class: 'tiles' },
      [['Cluster', cluster.cluster_id.slice(0, 12)], ['This node', cluster.node_id], ['Role', cluster.role],
        ['Leader', cluster.leader ?? 'none'], ['Term', cluster.term], ['Applied index', cluster.applied_index ?? '–']]
        .map(([label, value]) => h('div', { class: 'tile' }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value)))),
    h('h2', {}, 'Nodes'),
    table(['Id', 'Address', 'Role', { text: 'Lag', num: true }, { text: 'Last contact', num: true }, 'Health', 'Actions'], rows, 'Nodes'),
    h('h2', {}, 'Invite a node'),
    h('p', {}, h('button', { type: 'button', onclick: async () => {
      try {
        const invite = await api('POST', '/v1/cluster/invites');
        ticket.replaceChildren(h('p', {}, 'Start the new node with this ticket (valid until ',
          new Date(invite.expires_unix * 1000).toLocaleString(), '):'), h('p', { class: 'secret' }, invite.ticket));
      } catch (e) { fail(e); }
    } }, 'Make a join ticket')), ticket);
}

// ---- Lite clients ---------------------------------------------------------------------

async function litePage() {
  const drawn = state.page;
  const sessionsBox = h('div', {});
  const tokensBox = h('div', {});
  const drawSessions = async () => {
    const [sessions, status] = await Promise.all([api('GET', '/v1/sync/sessions'), api('GET', '/v1/status')]);
    const applied = status.applied_index || 0;
    sessionsBox.replaceChildren(table(['Client', 'Token', 'Address', { text: 'Cursor', num: true }, { text: 'Lag', num: true },
      { text: 'Queue', num: true }, { text: 'Connected', num: true }],
    sessions.map((s) => h('tr', {}, h('td', { class: 'mono' }, s.client_id), h('td', {}, s.token),
      h('td', { class: 'mono' }, s.remote), num(s.cursor_acked),
      num(s.cursor_acked === null ? null : Math.max(0, applied - s.cursor_acked)),
      num(s.queue_depth), num(`${s.connected_secs} s`))), 'Sessions'));
  };
  const drawTokens = async () => {
    const tokens = await api('GET', '/v1/lite-tokens');
    tokensBox.replaceChildren(table(['Name', 'Zones', { text: 'Sessions', num: true }, 'Actions'], tokens.map((token) => h('tr', {},
      h('td', {}, token.name), h('td', { class: 'mono' }, token.zones.join(' ')), num(token.sessions),
      h('td', {}, h('button', { type: 'button', class: 'danger', 'aria-label': `Revoke token ${token.name}`, onclick: async () => {
        if (!confirm(`Revoke ${token.name}? Its sessions close at once.`)) return;
        try {
          await api('DELETE', `/v1/lite-tokens/${enc(token.name)}`);
          created.replaceChildren();
          notice(`Revoked ${token.name}.`);
          await Promise.all([drawTokens(), drawSessions()]);
        } catch (e) { fail(e); }
      } }, 'Revoke')))), 'Tokens'));
  };
  const created = h('div', { id: 'created-token' });
  const name = h('input', { name: 'token-name', required: true, placeholder: 'laptop-anna' });
  const zones = h('input', { name: 'token-zones', required: true, placeholder: 'site.internal. corp.internal.' });
  const form = h('form', { class: 'inline', onsubmit: async (e) => {
    e.preventDefault();
    try {
      const token = await api('POST', '/v1/lite-tokens', { name: name.value, zones: zones.value.split(/[\s,]+/).filter(Boolean) });
      notice(`Created the token ${token.name}.`);
      created.replaceChildren(
        h('p', {}, 'The token, shown this once; give it to the laptop\u2019s outpost-lite:'),
        h('p', { class: 'secret' }, token.token));
      await drawTokens();
    } catch (error) { fail(error); }
  } }, field('Name', name), field('Zones', zones), h('button', { type: 'submit' }, 'Create token'));
  show('Lite clients', h('h2', {}, 'Sessions on this node'), sessionsBox, h('h2', {}, 'Tokens'), form, created, tokensBox);
  await Promise.all([drawSessions(), drawTokens()]);
  every(5000, () => drawSessions().catch(fail), drawn);
}

// ---- plugins --------------------------------------------------------------------------

function base64(buffer) {
  const bytes = new Uint8Array(buffer);
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

async function pluginsPage() {
  const plugins = await api('GET', '/v1/plugins');
  const inputs = {
    name: h('input', { name: 'plugin-name', required: true, placeholder: 'blocklist' }),
    hook: h('select', { name: 'hook' }, h('option', { value: 'query-policy' }, 'query-policy'), h('option', { value: 'record-transform' }, 'record-transform')),
    order: h('input', { name: 'order', type: 'number', value: 0, size: 4 }),
    onError: h('select', { name: 'on-error' }, h('option', { value: 'fail-open' }, 'fail-open'), h('option', { value: 'fail-closed' }, 'fail-closed')),
    enabled: h('input', { type: 'checkbox', name: 'enabled', id: 'plugin-enabled', checked: true }),
    component: h('input', { type: 'file', name: 'component', required: true, accept: '.wasm,application/wasm' }),
    config: h('input', { type: 'file', name: 'config' }),
  };
  const form = h('form', { class: 'inline', onsubmit: async (e) => {
    e.preventDefault();
    try {
      const component = base64(await inputs.component.files[0].arrayBuffer());
      const config = inputs.config.files[0] ? base64(await inputs.config.files[0].arrayBuffer()) : '';
      await api('PUT', `/v1/plugins/${enc(inputs.name.value)}`, {
        hook: inputs.hook.value, order: Number(inputs.order.value), on_error: inputs.onError.value,
        enabled: inputs.enabled.checked, component, config });
      notice(`Installed ${inputs.name.value}.`);
      route();
    } catch (error) { fail(error); }
  } }, field('Name', inputs.name), field('Hook', inputs.hook), field('Order', inputs.order),
  field('On error', inputs.onError), h('label', { class: 'check', for: 'plugin-enabled' }, inputs.enabled, 'Enabled'),
  field('Component (.wasm)', inputs.component), field('Configuration file', inputs.config),
  h('button', { type: 'submit' }, 'Install or update'));
  show('Plugins',
    table(['Name', 'Hook', { text: 'Version', num: true }, 'State', { text: 'Calls', num: true },
      { text: 'Memo hits', num: true }, { text: 'Traps', num: true }, { text: 'Per call (median / p99)', num: true }, 'Actions'],
    plugins.map((p) => h('tr', {}, h('td', {}, p.name), h('td', {}, p.hook), num(p.version),
      h('td', {}, h('span', { class: `tag ${p.state === 'running' ? 'good' : 'bad'}` }, String(p.state))),
      num(p.calls), num(p.memo_hits), num(p.traps),
      num(p.calls ? `${p.median_micros.toFixed(1)} / ${p.p99_micros.toFixed(1)} µs` : '–'),
      h('td', {}, h('button', { type: 'button', class: 'danger', 'aria-label': `Remove plugin ${p.name}`, onclick: async () => {
        if (!confirm(`Remove the plugin ${p.name} from every node?`)) return;
        try { await api('DELETE', `/v1/plugins/${enc(p.name)}`); notice(`Removed ${p.name}.`); route(); } catch (e) { fail(e); }
      } }, 'Remove'))))),
    h('h2', {}, 'Install or update a plugin'), form);
}

// ---- start ----------------------------------------------------------------------------

window.addEventListener('hashchange', () => { notice(''); route(); });
document.addEventListener('DOMContentLoaded', async () => {
  document.getElementById('sign-out').addEventListener('click', signOut);
  try {
    const session = await api('GET', '/ui/session');
    state.csrf = session.csrf;
    start();
  } catch (_) {
    signInPage();
  }
});
