// Courier web console: plain JavaScript, no framework, no inline code (the
// server's CSP is default-src 'self'). Everything goes through the admin API
// with the session cookie (HttpOnly: this script never sees it) and the CSRF
// token, which is kept in memory only. The API key is sent once, at sign-in,
// and never stored.
'use strict';

const POLL_MS = 2500;
let csrf = null;
let pollTimer = null;
let currentPage = null;

// ---- DOM helpers: text is always set as text, never parsed as HTML --------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const $ = (sel) => document.querySelector(sel);
let uid = 0;
function field(label, input, hint) {
  const id = input.id || ('f' + (++uid));
  input.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), input,
    hint ? h('p', { class: 'note' }, hint) : null);
}
function statusWord(s) { return h('span', { class: 'status ' + s }, s); }
function when(t) {
  if (!t) return '—';
  const d = new Date(t);
  return isNaN(d) ? t : d.toLocaleString();
}
function table(headers, rows) {
  return h('div', { class: 'table-wrap' }, h('table', { class: 'stack' },
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, rows.length ? rows.map((cells) => h('tr', {}, cells.map((c, i) =>
      h('td', { 'data-label': headers[i] }, c)))) :
      h('tr', {}, h('td', { colspan: headers.length }, 'Nothing to show.')))));
}
function replace(el, ...children) { el.replaceChildren(...children.flat(Infinity).filter((c) => c)); }
function say(text) { $('#live').textContent = text; }

// A device's report as a readable tree (nested lists), not raw JSON.
function tree(v) {
  if (v === null || v === undefined) return h('span', { class: 'note' }, 'no report yet');
  if (typeof v !== 'object') return h('span', {}, String(v));
  const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x]) : Object.entries(v);
  return h('ul', { class: 'tree' }, entries.map(([k, x]) => h('li', {},
    h('span', { class: 'k' }, k + ': '),
    (x !== null && typeof x === 'object') ? tree(x) : h('span', {}, String(x)))));
}

// ---- the API ---------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message, data) { super(message); this.status = status; this.data = data; }
}

function changesSomething(method, path) {
  return method !== 'GET' || path.startsWith('/v1/push/');
}

async function api(method, path, body, extraHeaders) {
  const headers = Object.assign({}, extraHeaders || {});
  if (changesSomething(method, path) && csrf) headers['X-CSRF-Token'] = csrf;
  let payload;
  if (body instanceof Uint8Array || typeof body === 'string') payload = body;
  else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const r = await fetch(path, { method, headers, body: payload, credentials: 'same-origin',
    cache: 'no-store', redirect: 'error' });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = { error: text }; }
  if (r.status === 401 && path !== '/ui/session') {
    showSignIn('Your session has ended. Sign in again.');
    throw new ApiError(401, 'signed out', data);
  }
  if (!r.ok && r.status !== 207) {
    throw new ApiError(r.status, (data && data.error) || ('HTTP ' + r.status), data);
  }
  return { status: r.status, data };
}

// ---- sign-in, sign-out -----------------------------------------------------

function showSignIn(message) {
  csrf = null;
  stopPolling();
  $('#shell').hidden = true;
  $('#signin').hidden = false;
  replace($('#main'));
  $('#signin-error').textContent = message || '';
  $('#api-key').value = '';
  $('#api-key').focus();
}

function showShell() {
  $('#signin').hidden = true;
  $('#shell').hidden = false;
  route();
}

async function signIn(ev) {
  ev.preventDefault();
  const input = $('#api-key');
  const key = input.value;
  input.value = '';  // not kept anywhere: the form holds it only until sent
  $('#signin-error').textContent = '';
  try {
    const r = await api('POST', '/ui/session', { api_key: key });
    csrf = r.data.csrf_token;
    if (!location.hash || location.hash === '#') location.hash = '#/overview';
    showShell();
  } catch (e) {
    $('#signin-error').textContent = e.status === 401
      ? 'That API key is not right. Nothing was signed in.'
      : 'Sign-in failed: ' + e.message;
    input.focus();
  }
}

async function signOut() {
  try { await api('DELETE', '/ui/session'); } catch (e) { /* ended either way */ }
  showSignIn('Signed out.');
}

// ---- polling: live updates within a few seconds, no reloads --------------

function stopPolling() { if (pollTimer) clearInterval(pollTimer); pollTimer = null; }
function startPolling(fn) {
  stopPolling();
  const tick = async () => {
    try { await Promise.all([fn(), refreshBanner()]); } catch (e) { if (e.status === 401) stopPolling(); }
  };
  tick();
  pollTimer = setInterval(tick, POLL_MS);
}

async function refreshBanner() {
  const r = await api('GET', '/v1/pushcert');
  const certs = (r.data && r.data.certs) || [];
  const bad = certs.filter((c) => c.expired || c.expiring);
  const el = $('#banner');
  if (!bad.length) { if (el.childNodes.length) replace(el); return; }
  const red = bad.some((c) => c.expired);
  const lines = bad.map((c) => c.expired
    ? `The push certificate for ${c.topic} expired on ${when(c.not_after)}: devices on that topic cannot be woken. Renew it on the Push certificate page with a new certificate for the same topic.`
    : `The push certificate for ${c.topic} expires on ${when(c.not_after)} (${c.days_left} days left). Renew it on the Push certificate page: request a renewal for the same topic at Apple's push certificates portal, then upload it.`);
  const key = lines.join('\n');
  if (el.dataset.key === key) return;
  el.dataset.key = key;
  replace(el, h('div', { class: 'banner ' + (red ? 'red' : 'amber'), role: 'alert' },
    lines.map((l) => h('p', {}, l))));
}

// ---- routing ----------------------------------------------------------------

const pages = {
  overview: overviewPage,
  devices: devicesPage,
  device: devicePage,
  commands: commandsPage,
  command: commandPage,
  pushcert: pushcertPage,
  enrollment: enrollmentPage,
};

function route() {
  if (!csrf) return;
  const parts = ((location.hash.replace(/^#\/?/, '').split('?')[0]) || 'overview').split('/');
  let name = parts[0];
  const arg = parts.length > 1 ? decodeURIComponent(parts.slice(1).join('/')) : null;
  if (name === 'devices' && arg) name = 'device';
  if (name === 'commands' && arg) name = 'command';
  if (!pages[name]) name = 'overview';
  const navName = name === 'device' ? 'devices' : name === 'command' ? 'commands' : name;
  for (const a of document.querySelectorAll('nav a')) {
    if (a.getAttribute('href') === '#/' + navName) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const main = $('#main');
  replace(main);
  stopPolling();
  currentPage = name;
  pages[name](main, arg);
}

function focusHeading(main) {
  const h1 = main.querySelector('h1');
  if (h1) { h1.setAttribute('tabindex', '-1'); h1.focus({ preventScroll: true }); }
}

// ---- Overview ----------------------------------------------------------------

function overviewPage(main) {
  const body = h('div', {});
  main.append(h('h1', {}, 'Overview'), body);
  focusHeading(main);
  startPolling(async () => {
    const [o, pc] = await Promise.all([api('GET', '/v1/overview'), api('GET', '/v1/pushcert')]);
    const d = o.data;
    replace(body,
      h('h2', {}, 'Certificates'),
      table(['Topic', 'Expires', 'Days left', 'Status'], pc.data.certs.map((c) => [
        h('span', { class: 'mono' }, c.topic), when(c.not_after), String(c.days_left),
        statusWord(c.expired ? 'expired' : c.expiring ? 'expiring' : c.usable ? 'ok' : 'unusable')])),
      h('h2', {}, 'Devices by state'),
      h('div', { class: 'cards' }, Object.entries(d.devices).map(([s, n]) =>
        h('a', { class: 'card', href: '#/devices?state=' + s }, h('span', { class: 'n' }, String(n)), s))),
      h('h2', {}, 'Queue and pushes'),
      h('div', { class: 'cards' },
        h('div', { class: 'card' }, h('span', { class: 'n' }, String(d.queue_depth)), 'commands waiting'),
        h('div', { class: 'card' }, h('span', { class: 'n' }, String(d.pushes_last_hour)), 'pushes in the last hour'),
        h('div', { class: 'card' }, h('span', { class: 'n' }, String(d.push_errors_last_hour)), 'push errors in the last hour')));
  });
}

// ---- Devices -----------------------------------------------------------------

function devicesPage(main) {
  const q = h('input', { type: 'search', name: 'q', placeholder: 'UDID, serial number or name', autocomplete: 'off' });
  const state = h('select', { name: 'state' },
    ['', 'pending', 'enrolled', 'unenrolled', 'retired'].map((s) => h('option', { value: s }, s || 'any state')));
  const initial = new URLSearchParams(location.hash.split('?')[1] || '');
  if (initial.get('state')) state.value = initial.get('state');
  const list = h('div', {});
  const pager = h('div', { class: 'actions' });
  let cursors = [''];  // cursor of each page shown so far
  main.append(h('h1', {}, 'Devices'),
    h('form', { class: 'row', role: 'search', onsubmit: (e) => { e.preventDefault(); cursors = ['']; load(); } },
      field('Search', q), field('State', state)), list, pager);
  focusHeading(main);
  let timer = null;
  q.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(() => { cursors = ['']; load(); }, 250); });
  state.addEventListener('change', () => { cursors = ['']; load(); });
  async function load() {
    const p = new URLSearchParams({ limit: '50' });
    if (q.value.trim()) p.set('q', q.value.trim());
    if (state.value) p.set('state', state.value);
    const cur = cursors[cursors.length - 1];
    if (cur) p.set('cursor', cur);
    const r = await api('GET', '/v1/devices?' + p);
    replace(list, table(['UDID', 'Serial', 'Name', 'State', 'Last check-in', 'Queued'],
      r.data.items.map((d) => [
        h('a', { href: '#/devices/' + encodeURIComponent(d.id), class: 'mono' }, d.id),
        d.serial_number || '—', d.device_name || '—', statusWord(d.state), when(d.last_seen), String(d.queued)])));
    replace(pager,
      cursors.length > 1 ? h('button', { type: 'button', class: 'secondary', onclick: () => { cursors = ['']; load(); } }, 'First page') : null,
      r.data.next_cursor ? h('button', { type: 'button', class: 'secondary', onclick: () => { cursors.push(r.data.next_cursor); load(); } }, 'Next page') : null);
  }
  startPolling(load);
}

// ---- a device ------------------------------------------------------------------

function b64(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function devicePage(main, id) {
  const facts = h('div', {});
  const actions = h('div', { class: 'actions', role: 'group', 'aria-label': 'Actions' });
  const formArea = h('div', {});
  const outcome = h('p', { role: 'status' });
  const commands = h('div', {});
  const timeline = h('div', {});
  let device = null;
  main.append(h('h1', {}, 'Device ', h('span', { class: 'mono' }, id)), facts,
    h('h2', {}, 'Actions'), actions, formArea, outcome,
    h('h2', {}, 'Commands'), commands, h('h2', {}, 'Timeline'), timeline);
  focusHeading(main);

  async function send(command, what) {
    try {
      const r = await api('POST', '/v1/commands', { targets: [id], command });
      const push = r.data.targets[id] && r.data.targets[id].push;
      outcome.className = 'result-ok';
      outcome.textContent = `${what} queued (${r.data.command_uuid})` +
        (push && push.status === 'error' ? `; push failed: ${push.error}` : '; the device was woken.');
      closeForm();
      await load();
    } catch (e) {
      outcome.className = 'error';
      outcome.textContent = `${what} refused: ${e.message}`;
    }
  }
  function closeForm() { replace(formArea); actions.hidden = false; }
  function openForm(form) {
    actions.hidden = true;
    outcome.textContent = '';
    replace(formArea, form);
    const first = form.querySelector('input, select, textarea, button');
    if (first) first.focus();
  }
  const cancel = () => h('button', { type: 'button', class: 'secondary', onclick: () => { closeForm(); actions.querySelector('button').focus(); } }, 'Cancel');

  function lockForm() {
    const msg = h('input', { type: 'text', maxlength: '200' });
    const phone = h('input', { type: 'tel', maxlength: '40' });
    const pin = h('input', { type: 'text', inputmode: 'numeric', pattern: '[0-9]{6}', maxlength: '6' });
    openForm(h('form', { class: 'panel', onsubmit: (e) => {
      e.preventDefault();
      const c = { RequestType: 'DeviceLock' };
      if (msg.value) c.Message = msg.value;
      if (phone.value) c.PhoneNumber = phone.value;
      if (pin.value) c.PIN = pin.value;
      send(c, 'Lock');
    } }, h('h3', {}, 'Lock the device'),
      field('Message', msg, 'Shown on the lock screen.'), field('Phone number', phone),
      field('PIN', pin, 'Macs only: six digits to unlock.'),
      h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Lock'), cancel())));
  }
  function installForm() {
    const file = h('input', { type: 'file', accept: '.mobileconfig,.plist,application/x-apple-aspen-config', required: true });
    openForm(h('form', { class: 'panel', onsubmit: async (e) => {
      e.preventDefault();
      if (!file.files.length) return;
      const bytes = new Uint8Array(await file.files[0].arrayBuffer());
      send({ RequestType: 'InstallProfile', Payload: b64(bytes) }, 'Install profile');
    } }, h('h3', {}, 'Install a profile'), field('Profile file', file, 'A .mobileconfig, signed or not.'),
      h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Install'), cancel())));
  }
  function removeForm() {
    const ident = h('input', { type: 'text', required: true });
    openForm(h('form', { class: 'panel', onsubmit: (e) => {
      e.preventDefault();
      send({ RequestType: 'RemoveProfile', Identifier: ident.value }, 'Remove profile');
    } }, h('h3', {}, 'Remove a profile'), field('Profile identifier', ident, 'The PayloadIdentifier of the installed profile.'),
      h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Remove'), cancel())));
  }
  function retireForm() {
    openForm(h('form', { class: 'panel', onsubmit: async (e) => {
      e.preventDefault();
      try {
        await api('POST', '/v1/devices/' + encodeURIComponent(id) + '/retire');
        outcome.className = 'result-ok';
        outcome.textContent = 'Retired: its queue is canceled and the device will remove its MDM profile at its next request.';
        closeForm();
        await load();
      } catch (err) { outcome.className = 'error'; outcome.textContent = 'Retire refused: ' + err.message; }
    } }, h('h3', {}, 'Retire this device?'),
      h('p', {}, 'Its queued commands are canceled and every request from it is answered so that it removes its MDM profile. This can be undone with Un-retire.'),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'danger' }, 'Retire device'), cancel())));
  }
  async function pushNow() {
    try {
      const r = await api('GET', '/v1/push/' + encodeURIComponent(id));
      const s = r.data.status[id] || {};
      outcome.className = s.push_error ? 'error' : 'result-ok';
      outcome.textContent = s.push_error ? 'Push failed: ' + s.push_error : 'Pushed (' + s.push_result + ').';
    } catch (e) { outcome.className = 'error'; outcome.textContent = 'Push failed: ' + e.message; }
  }
  async function unretire() {
    try {
      await api('POST', '/v1/devices/' + encodeURIComponent(id) + '/unretire');
      outcome.className = 'result-ok'; outcome.textContent = 'Un-retired.';
      await load();
    } catch (e) { outcome.className = 'error'; outcome.textContent = 'Un-retire refused: ' + e.message; }
  }
  function renderActions() {
    const retired = device && device.state === 'retired';
    replace(actions,
      h('button', { type: 'button', onclick: lockForm }, 'Lock'),
      h('button', { type: 'button', onclick: installForm }, 'Install profile'),
      h('button', { type: 'button', onclick: removeForm }, 'Remove profile'),
      h('button', { type: 'button', onclick: () => send({ RequestType: 'DeviceInformation', Queries: ['DeviceName', 'OSVersion', 'BuildVersion', 'ModelName', 'Model', 'ProductName', 'SerialNumber', 'DeviceCapacity', 'AvailableDeviceCapacity', 'BatteryLevel', 'WiFiMAC', 'BluetoothMAC'] }, 'Device information') }, 'Device information'),
      h('button', { type: 'button', onclick: pushNow }, 'Push now'),
      retired ? h('button', { type: 'button', class: 'secondary', onclick: unretire }, 'Un-retire')
        : h('button', { type: 'button', class: 'danger', onclick: retireForm }, 'Retire'));
  }
  let actionsState = null;
  async function load() {
    const enc = encodeURIComponent(id);
    const [d, c, t] = await Promise.all([api('GET', '/v1/devices/' + enc),
      api('GET', '/v1/devices/' + enc + '/commands?limit=50'), api('GET', '/v1/devices/' + enc + '/timeline?limit=100')]);
    device = d.data;
    replace(facts, h('dl', { class: 'facts' }, [
      ['State', statusWord(device.state)], ['UDID', device.udid || '—'], ['Serial number', device.serial_number || '—'],
      ['Name', device.device_name || '—'], ['Model', [device.model_name, device.model].filter(Boolean).join(' ') || '—'],
      ['OS', [device.os_version, device.build_version].filter(Boolean).join(' ') || '—'], ['Topic', device.topic || '—'],
      ['Push token', device.token_valid ? 'valid' : device.push_token_present ? 'invalid (APNs refused it)' : 'none yet'],
      ['Last check-in', when(device.last_seen)], ['Identity expires', when(device.identity_expires_at)],
      ['Queued', String(device.queued)]].map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])));
    if (actionsState !== device.state) {
      const hadFocus = actions.contains(document.activeElement);
      actionsState = device.state;
      renderActions();
      if (hadFocus) actions.querySelector('button').focus();
    }
    const rows = c.data.items.map((cmd) => {
      const tg = cmd.targets[id] || {};
      return [h('a', { href: '#/commands/' + encodeURIComponent(cmd.command_uuid), class: 'mono' }, cmd.command_uuid),
        cmd.request_type, h('span', { 'data-command': cmd.command_uuid }, statusWord(tg.status || '')), when(tg.updated_at),
        tg.result ? h('details', {}, h('summary', {}, 'Result'), tree(tg.result)) : h('span', { class: 'note' }, '—')];
    });
    replace(commands, table(['Command', 'Type', 'Status', 'Updated', 'Result'], rows));
    replace(timeline, table(['When', 'What', 'Detail'], t.data.items.slice().reverse().map((e) => [when(e.at), e.kind, h('span', { class: 'wrap' }, e.detail)])));
  }
  startPolling(load);
}

// ---- Commands ------------------------------------------------------------------

const STATUSES = ['queued', 'sent', 'acknowledged', 'error', 'command_format_error', 'notnow', 'canceled', 'expired'];

function commandsPage(main) {
  const status = h('select', {}, ['', ...STATUSES].map((s) => h('option', { value: s }, s || 'any status')));
  const type = h('input', { type: 'text', placeholder: 'e.g. DeviceLock' });
  const list = h('div', {});
  main.append(h('h1', {}, 'Commands'), h('form', { class: 'row', onsubmit: (e) => { e.preventDefault(); load(); } },
    field('Status', status), field('Type', type)), list);
  focusHeading(main);
  status.addEventListener('change', () => load());
  type.addEventListener('change', () => load());
  async function load() {
    const p = new URLSearchParams({ limit: '50' });
    if (status.value) p.set('status', status.value);
    if (type.value.trim()) p.set('request_type', type.value.trim());
    const r = await api('GET', '/v1/commands?' + p);
    replace(list, table(['Command', 'Type', 'Created', 'Targets'], r.data.items.map((c) => [
      h('a', { href: '#/commands/' + encodeURIComponent(c.command_uuid), class: 'mono' }, c.command_uuid),
      c.request_type, when(c.created_at),
      h('span', {}, Object.entries(c.targets || {}).map(([id, t]) => h('span', {}, id + ' ', statusWord(t.status), ' ')))])));
  }
  startPolling(load);
}

function commandPage(main, uuid) {
  const body = h('div', {});
  const outcome = h('p', { role: 'status' });
  const cancelBtn = h('button', { type: 'button', class: 'danger', onclick: async () => {
    try {
      const r = await api('DELETE', '/v1/commands/' + encodeURIComponent(uuid));
      outcome.className = 'result-ok';
      outcome.textContent = 'Canceled for ' + r.data.canceled.join(', ') + '.';
      await load();
    } catch (e) { outcome.className = 'error'; outcome.textContent = 'Cancel refused: ' + e.message; }
  } }, 'Cancel');
  main.append(h('h1', {}, 'Command ', h('span', { class: 'mono' }, uuid)), h('div', { class: 'actions' }, cancelBtn), outcome, body);
  focusHeading(main);
  async function load() {
    const r = await api('GET', '/v1/commands/' + encodeURIComponent(uuid));
    const c = r.data;
    replace(body, h('dl', { class: 'facts' }, h('dt', {}, 'Type'), h('dd', {}, c.request_type),
      h('dt', {}, 'Created'), h('dd', {}, when(c.created_at)), h('dt', {}, 'Expires'), h('dd', {}, when(c.expires_at))),
    h('h2', {}, 'Targets'),
    table(['Device', 'Status', 'Updated', 'Result'], Object.entries(c.targets).map(([id, t]) => [
      h('a', { href: '#/devices/' + encodeURIComponent(id), class: 'mono' }, id), statusWord(t.status), when(t.updated_at),
      t.result ? tree(t.result) : h('span', { class: 'note' }, '—')])));
  }
  startPolling(load);
}

// ---- Push certificate ----------------------------------------------------------

function pushcertPage(main) {
  const current = h('div', {});
  const history = h('div', {});
  const certFile = h('input', { type: 'file', accept: '.pem,.crt,.cer,.p12,.pfx', required: true });
  const keyFile = h('input', { type: 'file', accept: '.pem,.key' });
  const password = h('input', { type: 'password', autocomplete: 'off' });
  const result = h('div', { role: 'status' });
  const csrOut = h('p', { role: 'status' });
  main.append(h('h1', {}, 'Push certificate'), current,
    h('form', { class: 'panel', onsubmit: renew },
      h('h2', {}, 'Renew'),
      h('p', {}, 'Upload the renewed certificate from Apple\'s push certificates portal: a PEM certificate with its key file, a PKCS#12 file with its password, or, for a CSR made here, the certificate alone. Its topic must be the current one: a certificate for another topic is refused and nothing changes.'),
      field('Certificate file', certFile), field('Key file', keyFile, 'PEM private key; leave empty for PKCS#12 or a CSR made here.'),
      field('Password', password, 'For a PKCS#12 file.'),
      h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Renew')), result),
    h('div', { class: 'panel' }, h('h2', {}, 'Certificate signing request'),
      h('p', {}, 'The server makes and keeps the private key; upload the certificate Apple issues for this CSR above, without a key.'),
      h('div', { class: 'actions' }, h('button', { type: 'button', class: 'secondary', onclick: csr }, 'Download CSR')), csrOut),
    h('h2', {}, 'History'), history);
  focusHeading(main);

  async function renew(e) {
    e.preventDefault();
    replace(result);
    if (!certFile.files.length) return;
    const cert = new Uint8Array(await certFile.files[0].arrayBuffer());
    const headers = {};
    let body;
    if (cert[0] === 0x30) {  // DER: PKCS#12
      headers['Content-Type'] = 'application/x-pkcs12';
      if (password.value) headers['X-Pkcs12-Password'] = password.value;
      body = cert;
    } else {
      let text = new TextDecoder().decode(cert);
      if (keyFile.files.length) text += '\n' + await keyFile.files[0].text();
      body = text;
    }
    try {
      const r = await api('PUT', '/v1/pushcert', body, headers);
      const d = r.data;
      replace(result, h('p', { class: 'result-ok' }, `${d.renewed ? 'Renewed' : 'Imported'}: ${d.topic}, valid until ${when(d.not_after)} (${d.days_left} days). The next push uses it.`));
      certFile.value = ''; keyFile.value = ''; password.value = '';
      await load();
      await refreshBanner();
    } catch (err) {
      const msg = err.status === 409
        ? 'Refused, nothing was changed: this certificate is for a different topic than the one your devices are enrolled under, so they would stop receiving pushes. Renew the existing certificate instead (same Apple ID, "Renew" at Apple\'s push certificates portal) and upload that.'
        : 'Refused, nothing was changed: ' + err.message;
      replace(result, h('div', { role: 'alert' }, h('p', { class: 'error' }, msg),
        err.status === 409 ? h('p', { class: 'note' }, 'Details: ' + err.message) : null));
      return;
    }
  }
  async function csr() {
    try {
      const r = await api('POST', '/v1/pushcert/csr', {});
      // With --vendor-cert the server also signs it as Apple's portal wants it.
      const vendor = typeof r.data.vendor_request === 'string';
      const content = vendor ? r.data.vendor_request : r.data.csr_pem;
      const name = vendor ? r.data.vendor_filename : (r.data.filename || 'courier-push.csr');
      const url = URL.createObjectURL(new Blob([content], { type: vendor ? 'text/plain' : 'application/pkcs10' }));
      const a = h('a', { href: url, download: name });
      document.body.append(a); a.click(); a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      csrOut.className = 'result-ok';
      csrOut.textContent = (vendor ? 'Vendor-signed request downloaded (' + name + ').' : 'CSR downloaded (' + name + ').') +
        ' Upload it at Apple\'s push certificates portal, then upload the certificate Apple issues above, without a key.';
    } catch (e) { csrOut.className = 'error'; csrOut.textContent = 'CSR failed: ' + e.message; }
  }
  async function load() {
    const [a, hst] = await Promise.all([api('GET', '/v1/pushcert'), api('GET', '/v1/pushcert/history')]);
    replace(current, a.data.certs.length ? table(['Topic', 'Expires', 'Days left', 'Thumbprint (SHA-1)', 'Status'], a.data.certs.map((c) => [
      h('span', { class: 'mono' }, c.topic), when(c.not_after), String(c.days_left), h('span', { class: 'mono' }, c.thumbprint_sha1),
      statusWord(c.expired ? 'expired' : c.expiring ? 'expiring' : c.usable ? 'ok' : ('unusable: ' + c.unusable_reason))]))
      : h('p', {}, 'No push certificate yet: upload one below.'));
    replace(history, table(['Topic', 'Valid until', 'Uploaded', 'Replaced', 'Thumbprint (SHA-1)'], hst.data.certs.map((c) => [
      h('span', { class: 'mono' }, c.topic), when(c.not_after), when(c.uploaded_at), c.active ? 'active' : when(c.replaced_at),
      h('span', { class: 'mono' }, c.thumbprint_sha1)])));
  }
  startPolling(load);
}

// ---- Enrollment ------------------------------------------------------------------

function enrollmentPage(main) {
  // The link devices reach (--public-url), from the overview: it may differ
  // from the address this console was opened at.
  const enrollLink = h('p', {}, '…');
  api('GET', '/v1/overview').then((r) => {
    const link = r.data.enroll_url;
    replace(enrollLink, h('a', { href: link, class: 'mono' }, link));
  }).catch((err) => replace(enrollLink, h('span', { class: 'error' }, 'Enrollment link unavailable: ' + err.message)));
  const list = h('div', {});
  const created = h('div', { role: 'status' });
  const uses = h('input', { type: 'number', min: '-1', value: '1' });
  const note = h('input', { type: 'text', maxlength: '200' });
  const expires = h('input', { type: 'datetime-local' });
  main.append(h('h1', {}, 'Enrollment'),
    h('p', {}, 'Devices enroll from this link (open it on the device in Safari):'),
    enrollLink,
    h('form', { class: 'panel', onsubmit: create }, h('h2', {}, 'New enrollment token'),
      field('Uses', uses, '-1: unlimited.'), field('Note', note), field('Expires', expires, 'Optional.'),
      h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Create token')), created),
    h('h2', {}, 'Tokens'), list);
  focusHeading(main);
  async function create(e) {
    e.preventDefault();
    const body = { uses: Number(uses.value), note: note.value };
    if (expires.value) body.expires_at = new Date(expires.value).toISOString().replace(/\.\d+Z$/, 'Z');
    try {
      const r = await api('POST', '/v1/enrollment-tokens', body);
      replace(created, h('p', { class: 'result-ok' }, 'Token created; it is shown only now. Enrollment link: '),
        h('p', {}, h('a', { href: r.data.enroll_url, class: 'mono' }, r.data.enroll_url)));
      await load();
    } catch (err) { replace(created, h('p', { class: 'error' }, 'Refused: ' + err.message)); }
  }
  async function load() {
    const r = await api('GET', '/v1/enrollment-tokens');
    const items = r.data.items || r.data.tokens || [];
    replace(list, table(['Token', 'Uses left', 'Expires', 'Note', ''], items.map((t) => [
      h('span', { class: 'mono' }, t.id), t.uses_left < 0 ? 'unlimited' : String(t.uses_left), when(t.expires_at), t.note || '—',
      h('button', { type: 'button', class: 'secondary', 'aria-label': 'Revoke ' + t.id, onclick: async () => {
        try { await api('DELETE', '/v1/enrollment-tokens/' + encodeURIComponent(t.id)); await load(); } catch (e) { say('Revoke refused: ' + e.message); }
      } }, 'Revoke')])));
  }
  startPolling(load);
}

// ---- start -----------------------------------------------------------------------

document.addEventListener('DOMContentLoaded', async () => {
  $('#signin-form').addEventListener('submit', signIn);
  $('#signout').addEventListener('click', signOut);
  window.addEventListener('hashchange', route);
  try {
    const r = await api('GET', '/ui/session');
    csrf = r.data.csrf_token;
    showShell();
  } catch (e) {
    showSignIn('');
  }
});
