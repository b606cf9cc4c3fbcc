// The web console in a real browser: Debian's chromium, headless, driven by
// puppeteer-core, against a real `courier serve` on 127.0.0.1 with a temp data
// dir, pushing to the simulator's fake APNs, and simulated devices that
// answer the commands the console queues (SPEC "Web console").
//
//   node console.test.mjs [--courier PATH] [--screenshots DIR]
//
// One server and one browser for the whole suite; the tests run in order
// and build on one another (sign in, then use the pages, then sign out).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const COURIER = path.resolve(arg('--courier', process.env.COURIER_BINARY || path.join(here, '../../build/courier')));
const SHOTS = path.resolve(arg('--screenshots', path.join(here, '../../build/browser-screenshots')));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TOPIC = 'com.apple.mgmt.External.6a0b3b5e-5b1f-4c47-9d39-0b7c1d2a9e11';
const OTHER_TOPIC = 'com.apple.mgmt.External.0f9e8d7c-0000-4000-8000-000000000001';
const DEADLINE_MS = 20000;

let dir, origin, apiKey, caPem, browser, page;
const children = [];
const requests = [];          // every URL the browser asked for
const policyViolations = [];  // CSP reports in the console

// ---- helpers -----------------------------------------------------------------

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

function start(name, args) {
  const log = fs.openSync(path.join(dir, name + '.log'), 'w');
  const child = spawn(COURIER, args, { stdio: ['ignore', log, log] });
  child.name = name;
  children.push(child);
  return child;
}

async function waitFor(what, fn, deadline = DEADLINE_MS) {
  const end = Date.now() + deadline;
  let last;
  while (Date.now() < end) {
    try { const v = await fn(); if (v) return v; } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}` + (last ? `: ${last.message}` : ''));
}

// The admin API as a script calls it (Bearer key), from node.
function api(method, p, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request(origin + p, {
      method, ca: caPem, headers: { Authorization: 'Bearer ' + apiKey, ...headers },
    }, (res) => {
      let data = '';
      res.on('data', (c) => { data += c; });
      res.on('end', () => {
        let json = null;
        try { json = data ? JSON.parse(data) : null; } catch { json = data; }
        resolve({ status: res.statusCode, body: json });
      });
    });
    req.on('error', reject);
    if (body !== undefined) req.write(typeof body === 'string' ? body : JSON.stringify(body));
    req.end();
  });
}

function openssl(...args) { execFileSync('openssl', args, { stdio: 'pipe' }); }

// A self-signed certificate shaped like an APNs MDM push certificate.
function pushCert(name, topic, days) {
  const key = path.join(dir, name + '.key');
  const crt = path.join(dir, name + '.pem');
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', String(days), '-keyout', key,
    '-out', crt, '-subj', `/UID=${topic}/CN=APSP:${name}/C=US`);
  return { key, crt };
}

// The control a <label> names (file inputs have no textbox role to query by).
async function labelled(text) {
  await page.waitForFunction((t) => [...document.querySelectorAll('label')].some((l) => l.textContent === t && l.control), {}, text);
  return page.evaluateHandle((t) => [...document.querySelectorAll('label')].find((l) => l.textContent === t).control, text);
}

const aria = (name, role) => `::-p-aria([name="${name}"]${role ? `[role="${role}"]` : ''})`;

async function shot(name) {
  await page.screenshot({ path: path.join(SHOTS, name + '.png'), fullPage: true });
}

async function signedInCookie() {
  return (await page.cookies()).find((c) => c.name === '__Host-courier_session');
}

// ---- the whole setup: server, fake APNs + devices, browser -------------------

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'courier-browser-'));
  const [port, apnsPort] = [await freePort(), await freePort()];
  origin = `https://127.0.0.1:${port}`;
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
    '-keyout', path.join(dir, 'apns.key'), '-out', path.join(dir, 'apns.crt'));
  const data = path.join(dir, 'data');
  const server = start('serve', ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', data,
    '--public-url', origin, '--apns-url', `https://127.0.0.1:${apnsPort}`,
    '--apns-ca', path.join(dir, 'apns.crt'), '--cert-warn-days', '10']);
  await waitFor('courier serve to write its key', () => fs.existsSync(path.join(data, 'api-key')) &&
    fs.existsSync(path.join(data, 'tls', 'ca.crt')) && server.exitCode === null);
  apiKey = fs.readFileSync(path.join(data, 'api-key'), 'utf8').trim();
  caPem = fs.readFileSync(path.join(data, 'tls', 'ca.crt'));
  await waitFor('/healthz', async () => (await api('GET', '/healthz')).status === 200);

  // A push certificate with 5 days left: the amber banner. It is valid for
  // 6 days from the second it was made, so once that second has passed
  // floor(seconds left / 86400) is 5.
  const made = Math.floor(Date.now() / 1000);
  const five = pushCert('push-5-days', TOPIC, 6);
  await waitFor('the certificate\'s first second to pass', () => Date.now() / 1000 >= made + 2);
  const put = await api('PUT', '/v1/pushcert', fs.readFileSync(five.crt, 'utf8') + fs.readFileSync(five.key, 'utf8'));
  assert.equal(put.status, 200, JSON.stringify(put.body));
  assert.equal(put.body.days_left, 5);

  start('simulate', ['simulate', '--url', origin, '--data-dir', data, '--devices', '3',
    '--udid-prefix', 'BROWSER-', '--duration', '0', '-q', '--apns-listen', `127.0.0.1:${apnsPort}`,
    '--apns-cert', path.join(dir, 'apns.crt'), '--apns-key', path.join(dir, 'apns.key')]);
  await waitFor('three enrolled devices', async () => {
    const r = await api('GET', '/v1/devices?state=enrolled');
    return r.status === 200 && r.body.items.length === 3;
  });

  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    acceptInsecureCerts: true,  // the server's generated CA is not in chromium's store
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-default-apps'],
  });
  page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 800 });
  page.setDefaultTimeout(DEADLINE_MS);
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) policyViolations.push(m.text()); });
});

after(async () => {
  if (browser) await browser.close();
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  await Promise.all(children.map((c) => c.exitCode !== null ? null :
    new Promise((r) => { const t = setTimeout(() => { c.kill('SIGKILL'); r(); }, 5000); c.once('exit', () => { clearTimeout(t); r(); }); })));
  if (process.exitCode) {
    for (const c of children) {
      const log = path.join(dir, c.name + '.log');
      if (fs.existsSync(log)) console.error(`---- ${c.name}.log (tail)\n` + fs.readFileSync(log, 'utf8').split('\n').slice(-30).join('\n'));
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

// ---- the tests -----------------------------------------------------------------

test('a wrong API key is refused and no session starts', async () => {
  await page.goto(origin + '/');
  assert.equal(new URL(page.url()).pathname, '/ui/');  // "/" redirects to the console
  await page.locator(aria('API key', 'textbox')).fill('not-the-key');
  await page.locator(aria('Sign in', 'button')).click();
  await page.waitForFunction(() => /not right/.test(document.querySelector('#signin-error').textContent));
  assert.equal(await signedInCookie(), undefined);
  await shot('sign-in-refused');
});

test('signing in with the key starts a session and keeps no secret in the browser', async () => {
  await page.locator(aria('API key', 'textbox')).fill(apiKey);
  await page.locator(aria('Sign in', 'button')).click();
  await page.waitForSelector('::-p-aria([name="Overview"][role="heading"])');
  const c = await signedInCookie();
  assert.ok(c, 'session cookie set');
  assert.equal(c.httpOnly, true);
  assert.equal(c.secure, true);
  assert.equal(c.sameSite, 'Strict');
  assert.ok(c.expires > 0 && c.expires - Date.now() / 1000 <= 12 * 3600 + 60, 'at most 12 h');
  const stored = await page.evaluate(() => JSON.stringify([document.cookie, { ...localStorage }, { ...sessionStorage }, location.href]));
  assert.ok(!stored.includes(apiKey), 'the key is nowhere in cookies, storage or the URL');
  assert.equal(await page.$eval('#api-key', (e) => e.value), '');
});

test('the banner warns of a certificate with 5 days left on every page', async () => {
  const banner = await page.waitForSelector('#banner [role="alert"]');
  const text = await banner.evaluate((e) => e.textContent);
  assert.match(text, /5 days left/);
  assert.ok(text.includes(TOPIC));
  assert.match(text, /Renew/);
  assert.equal(await banner.evaluate((e) => e.className), 'banner amber');
  await page.waitForFunction(() => document.querySelectorAll('main .card').length >= 7);
  await shot('overview');
  await page.locator(aria('Devices', 'link')).click();
  await page.waitForSelector('::-p-aria([name="Devices"][role="heading"])');
  assert.ok(await page.$('#banner [role="alert"]'));
});

test('searching finds a device by part of its UDID', async () => {
  const all = (await api('GET', '/v1/devices?state=enrolled')).body.items.map((d) => d.id).sort();
  await page.waitForFunction((n) => document.querySelectorAll('main tbody tr').length === n, {}, all.length);
  await page.locator(aria('Search', 'searchbox')).fill(all[1].slice(-6));
  await page.waitForFunction((id) => {
    const rows = [...document.querySelectorAll('main tbody tr')];
    return rows.length === 1 && rows[0].textContent.includes(id);
  }, {}, all[1]);
  await shot('devices-search');
});

test('Lock reaches acknowledged without reloading the page', async () => {
  const id = (await api('GET', '/v1/devices?state=enrolled')).body.items[0].id;
  await page.goto(`${origin}/ui/#/devices/${encodeURIComponent(id)}`);
  await page.waitForSelector('::-p-aria([name="Lock"][role="button"])');
  await page.evaluate(() => { window.notReloaded = true; });
  await page.locator(aria('Lock', 'button')).click();
  await page.locator(aria('Message', 'textbox')).fill('Call IT on 555 0100');
  await page.locator(aria('Phone number', 'textbox')).fill('+1 555 0100');
  await shot('device-lock-form');
  await page.locator(aria('Lock', 'button')).click();
  await page.waitForFunction(() => [...document.querySelectorAll('main tbody tr')].some((tr) =>
    tr.textContent.includes('DeviceLock') && tr.querySelector('.status.acknowledged')));
  assert.equal(await page.evaluate(() => window.notReloaded), true, 'no reload happened');
  const facts = await page.$eval('main dl.facts', (e) => e.innerText);
  assert.match(facts, /State\s+enrolled/);
  assert.ok(facts.includes(id));
  const cmds = (await api('GET', `/v1/devices/${encodeURIComponent(id)}/commands`)).body.items;
  const lock = cmds.find((c) => c.request_type === 'DeviceLock');
  assert.equal(lock.targets[id].status, 'acknowledged');
  await shot('device');
});

test('a profile is installed from a file', async () => {
  const file = path.join(dir, 'wifi.mobileconfig');
  fs.writeFileSync(file, `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
<key>PayloadContent</key><array/>
<key>PayloadDisplayName</key><string>Browser test</string>
<key>PayloadIdentifier</key><string>com.example.browser-test</string>
<key>PayloadType</key><string>Configuration</string>
<key>PayloadUUID</key><string>5E1C6C1E-9F7B-4D56-9B8E-2C1F0C0D1E2F</string>
<key>PayloadVersion</key><integer>1</integer>
</dict></plist>
`);
  await page.locator(aria('Install profile', 'button')).click();
  const input = await labelled('Profile file');
  await input.uploadFile(file);
  await page.locator(aria('Install', 'button')).click();
  await page.waitForFunction(() => [...document.querySelectorAll('main tbody tr')].some((tr) =>
    tr.textContent.includes('InstallProfile') && tr.querySelector('.status.acknowledged')));
});

test('a renewal with another topic is refused in plain words and changes nothing', async () => {
  const active = async () => (await api('GET', '/v1/pushcert')).body.certs.map((c) => c.topic + ' ' + c.thumbprint_sha1);
  const before = await active();
  const other = pushCert('other-topic', OTHER_TOPIC, 365);
  await page.locator(aria('Push certificate', 'link')).click();
  await page.waitForSelector('::-p-aria([name="Push certificate"][role="heading"])');
  await (await labelled('Certificate file')).uploadFile(other.crt);
  await (await labelled('Key file')).uploadFile(other.key);
  await page.locator(aria('Renew', 'button')).click();
  const alert = await page.waitForSelector('main [role="alert"]');
  const text = await alert.evaluate((e) => e.textContent);
  assert.match(text, /nothing was changed/);
  assert.match(text, /different topic/);
  assert.deepEqual(await active(), before);
  await shot('pushcert-refused');
});

test('a CSR made by the server is completed by the certificate alone, and the banner goes', async () => {
  const downloads = path.join(dir, 'downloads');
  fs.mkdirSync(downloads);
  const cdp = await browser.target().createCDPSession();
  await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: downloads, eventsEnabled: true });
  await page.locator(aria('Download CSR', 'button')).click();
  const csr = path.join(downloads, 'courier-push.csr');
  await waitFor('the CSR download', () => fs.existsSync(csr) && fs.readFileSync(csr, 'utf8').includes('END CERTIFICATE REQUEST'));
  // Apple's part, played by openssl: a certificate for that CSR with the current topic.
  const ca = pushCert('portal-ca', 'com.apple.mgmt.portal', 2);
  const issued = path.join(dir, 'issued.pem');
  openssl('x509', '-req', '-in', csr, '-CA', ca.crt, '-CAkey', ca.key, '-days', '365',
    '-subj', `/UID=${TOPIC}/CN=APSP:renewed/C=US`, '-out', issued);
  await (await labelled('Certificate file')).uploadFile(issued);
  await page.evaluate(() => { const k = [...document.querySelectorAll('label')].find((l) => l.textContent === 'Key file').control; k.value = ''; });
  await page.locator(aria('Renew', 'button')).click();
  await page.waitForFunction(() => /Renewed: /.test(document.querySelector('main [role="status"]').textContent));
  await page.waitForFunction(() => !document.querySelector('#banner [role="alert"]'));
  const certs = (await api('GET', '/v1/pushcert')).body.certs;
  assert.equal(certs.length, 1);
  assert.equal(certs[0].topic, TOPIC);
  assert.ok(certs[0].days_left >= 364);
  await shot('pushcert-renewed');
});

test('the Commands page filters by status and opens a command with its results', async () => {
  await page.locator(aria('Commands', 'link')).click();
  await page.waitForSelector('::-p-aria([name="Commands"][role="heading"])');
  await page.select('main select', 'acknowledged');
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('main tbody tr')];
    return rows.length >= 2 && rows.every((tr) => tr.querySelector('.status.acknowledged'));
  });
  await shot('commands');
  const lock = (await api('GET', '/v1/commands?request_type=DeviceLock')).body.items[0].command_uuid;
  await page.locator(aria(lock, 'link')).click();
  await page.waitForSelector('::-p-aria([name="Cancel"][role="button"])');
  await page.waitForFunction(() => document.querySelector('main tbody .status.acknowledged'));
  await page.locator(aria('Cancel', 'button')).click();  // nothing left to cancel: refused, shown
  await page.waitForFunction(() => /Cancel refused/.test(document.querySelector('main [role="status"]').textContent));
  await shot('command');
});

test('enrollment tokens are created, shown once and revoked', async () => {
  await page.locator(aria('Enrollment', 'link')).click();
  await page.waitForSelector('::-p-aria([name="Enrollment"][role="heading"])');
  // The link devices reach (--public-url, from the overview), not this page's address.
  await page.waitForSelector(`main a[href="${origin}/enroll"]`);
  await page.locator(aria('Uses', 'spinbutton')).fill('2');
  await page.locator(aria('Note', 'textbox')).fill('loaner iPads');
  await page.locator(aria('Create token', 'button')).click();
  const link = await page.waitForSelector('main [role="status"] a');
  const url = await link.evaluate((a) => a.textContent);
  assert.ok(url.startsWith(origin + '/enroll?token='), url);
  const tokens = (await api('GET', '/v1/enrollment-tokens')).body.items;
  assert.equal(tokens.length, 1);
  assert.equal(tokens[0].note, 'loaner iPads');
  await page.waitForFunction(() => /loaner iPads/.test(document.querySelector('main tbody').textContent));
  await shot('enrollment');
  await page.locator(aria('Revoke ' + tokens[0].id, 'button')).click();
  await page.waitForFunction(() => !/loaner iPads/.test(document.querySelector('main tbody').textContent));
  assert.equal((await api('GET', '/v1/enrollment-tokens')).body.items.length, 0);
});

test('a change without the CSRF token is refused, even from the console\'s own page', async () => {
  const id = (await api('GET', '/v1/devices?state=enrolled')).body.items[2].id;
  const statuses = await page.evaluate(async (target) => {
    const read = await fetch('/v1/devices', { credentials: 'same-origin' });
    const post = await fetch('/v1/commands', { method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ targets: [target], command: { RequestType: 'DeviceLock' } }) });
    const push = await fetch('/v1/push/' + target, { credentials: 'same-origin' });
    return [read.status, post.status, push.status];
  }, id);
  assert.deepEqual(statuses, [200, 403, 403]);
  const cmds = (await api('GET', `/v1/devices/${encodeURIComponent(id)}/commands`)).body.items;
  assert.equal(cmds.length, 0, 'nothing was queued');
});

test('the console is usable at 390×844', async () => {
  await page.setViewport({ width: 390, height: 844, isMobile: true, hasTouch: true });
  try {
    const id = (await api('GET', '/v1/devices?state=enrolled')).body.items[0].id;
    for (const where of ['#/overview', '#/devices', `#/devices/${encodeURIComponent(id)}`, '#/commands', '#/pushcert', '#/enrollment']) {
      await page.goto(`${origin}/ui/${where}`);
      await page.waitForSelector('main h1');
      await page.waitForFunction(() => !document.querySelector('main tbody') || document.querySelectorAll('main tbody tr').length > 0);
      const [width, widest] = await page.evaluate(() => {
        let w = null;
        for (const e of document.querySelectorAll('body *')) {
          const r = e.getBoundingClientRect();
          if (r.right > 390 && (!w || r.right > w.right)) w = { right: r.right, what: e.tagName + '.' + e.className + ' ' + (e.textContent || '').slice(0, 60) };
        }
        return [document.documentElement.scrollWidth, w];
      });
      assert.ok(!(await page.evaluate(() => document.body.innerText)).includes('[object'), `${where}: no unrendered values`);
      assert.ok(width <= 390, `${where}: page is ${width}px wide at a 390px viewport (${JSON.stringify(widest)})`);
      if (where.startsWith('#/devices/')) {
        for (const name of ['Lock', 'Install profile', 'Remove profile', 'Device information', 'Push now', 'Retire']) {
          const box = await (await page.waitForSelector(`::-p-aria([name="${name}"][role="button"])`)).boundingBox();
          assert.ok(box && box.x >= 0 && box.x + box.width <= 390, `${name} is reachable`);
        }
        await shot('phone-device');
      }
      if (where === '#/devices') await shot('phone-devices');
    }
  } finally {
    await page.setViewport({ width: 1280, height: 800 });
  }
});

test('the pages can be used with the keyboard alone, with a visible focus', async () => {
  await page.goto(`${origin}/ui/#/overview`);
  await page.waitForSelector('::-p-aria([name="Overview"][role="heading"])');
  await page.evaluate(() => document.activeElement && document.activeElement.blur());
  let reached = false;
  for (let i = 0; i < 12 && !reached; ++i) {
    await page.keyboard.press('Tab');
    reached = await page.evaluate(() => document.activeElement.textContent === 'Devices' && document.activeElement.tagName === 'A');
  }
  assert.ok(reached, 'Tab reaches the Devices link');
  const outline = await page.evaluate(() => {
    const s = getComputedStyle(document.activeElement);
    return [s.outlineStyle, parseFloat(s.outlineWidth)];
  });
  assert.notEqual(outline[0], 'none');
  assert.ok(outline[1] >= 2, 'focus outline is visible');
  await page.keyboard.press('Enter');
  await page.waitForSelector('::-p-aria([name="Devices"][role="heading"])');
  // From the heading, Tab leads to the search field; typing filters.
  let onSearch = false;
  for (let i = 0; i < 5 && !onSearch; ++i) {
    await page.keyboard.press('Tab');
    onSearch = await page.evaluate(() => document.activeElement.type === 'search');
  }
  assert.ok(onSearch, 'Tab reaches Search');
  const id = (await api('GET', '/v1/devices?state=enrolled')).body.items[0].id;
  await page.keyboard.type(id);
  await page.waitForFunction(() => document.querySelectorAll('main tbody tr').length === 1);
  // Tab on to the device's link and open it with Enter.
  let onLink = false;
  for (let i = 0; i < 5 && !onLink; ++i) {
    await page.keyboard.press('Tab');
    onLink = await page.evaluate((x) => document.activeElement.textContent === x, id);
  }
  assert.ok(onLink, 'Tab reaches the device link');
  await page.keyboard.press('Enter');
  await page.waitForSelector('::-p-aria([name="Lock"][role="button"])');
  await shot('keyboard-focus');
});

test('signing out ends the session on the server', async () => {
  const cookie = await signedInCookie();
  await page.locator(aria('Sign out', 'button')).click();
  await page.waitForSelector('::-p-aria([name="Sign in"][role="button"])');
  assert.equal(await signedInCookie(), undefined);
  // The old cookie, replayed from outside the browser, no longer works.
  const replay = await new Promise((resolve, reject) => {
    https.get(origin + '/v1/devices', { ca: caPem, headers: { Cookie: `${cookie.name}=${cookie.value}` } },
      (res) => { res.resume(); resolve(res.statusCode); }).on('error', reject);
  });
  assert.equal(replay, 401);
  assert.equal(await page.evaluate(async () => (await fetch('/v1/devices')).status), 401);
  await shot('signed-out');
});

test('the console asked for nothing from another origin and broke no policy', () => {
  assert.ok(requests.length > 10);
  const foreign = requests.filter((u) => !u.startsWith(origin + '/') && !u.startsWith('blob:') && !u.startsWith('data:'));
  assert.deepEqual(foreign, []);
  assert.deepEqual(policyViolations, []);
});
