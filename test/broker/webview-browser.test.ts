import t from 'tap';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { hashPassword } from '../../broker/auth/password-hash.js';
import { buildView } from '../../broker/http/view/bundle.js';
import { freePort, startTestBroker, tempDir } from '../helpers/broker.js';
import { connectClient } from '../helpers/mqtt.js';
import { repoRoot } from '../helpers/paths.js';

/**
 * The web view in a real browser: Debian's chromium, headless, driven by puppeteer-core (which
 * downloads nothing). One browser and one broker for the file; each test opens its own page.
 */
const CHROMIUM = '/usr/bin/chromium';
const PW = { viewer: 'viewer-pw-Q1w2', pub: 'pub-pw-X9a4' };
const SHOTS = join(repoRoot, 'docs', 'img');
const HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">';

await buildView();
const dir = tempDir('mqprobe-view-browser-');
writeFileSync(join(dir, 'passwd'), `viewer:${await hashPassword(PW.viewer)}\npub:${await hashPassword(PW.pub)}\n`);
writeFileSync(join(dir, 'acl'), 'user viewer\ntopic read #\ntopic read $SYS/#\nuser pub\ntopic readwrite #\n');
chmodSync(dir, 0o755);
// a ban made earlier (detection's ban file, read at start with `persistence true`), for the Alerts view to lift
const banned = {
  entity: 'ip 10.9.9.9',
  rule: 'auth-brute-force',
  since: new Date().toISOString(),
  until: new Date(Date.now() + 600_000).toISOString(),
};
writeFileSync(join(dir, 'mqprobe-bans.json'), JSON.stringify({ bans: [banned] }));
const zeekLogs = join(dir, 'zeek');
mkdirSync(zeekLogs);
const deadRemote = await freePort(); // nothing listens: the bridge waits and shows why
const b = await startTestBroker(
  t,
  `listener 0 127.0.0.1\nallow_anonymous false\npassword_file ${join(dir, 'passwd')}\nacl_file ${join(dir, 'acl')}\nhttp_listener 0 127.0.0.1\nsys_interval 1\n` +
    // a capture sink and a beat (over an empty Zeek log folder) for the Health view
    `capture_sink file ${join(dir, 'capture.jsonl')}\npersistence_location ${dir}\nbeat zeek\nzeek_log_dir ${zeekLogs}\n` +
    // detection's responses: the bans panel, managed by the viewer as the admin
    'persistence true\ndetect_response auth-brute-force ban 10m\ndetect_admin_user viewer\n' +
    // an MQTT bridge to a remote that is down, for the Health view's last error (its password must not show)
    `connection upstream\naddress 127.0.0.1:${deadRemote}\nremote_username gw\nremote_password bridge-pw-Kk71\ntopic a/# out 0\n`,
  { dir },
);
const base = `http://127.0.0.1:${b.httpPort}`;
const browser: Browser = await puppeteer.launch({
  executablePath: CHROMIUM,
  headless: true,
  // root in CI containers: Chromium's sandbox needs user namespaces it may not have there
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
t.teardown(() => browser.close());
mkdirSync(SHOTS, { recursive: true });

const pub = () => ({ username: 'pub', password: PW.pub });

/** A page logged in as the viewer; CSP reports and page errors are collected. */
async function viewerPage(theme: 'light' | 'dark' = 'light'): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage();
  t.teardown(() => page.close());
  await page.setViewport({ width: 1280, height: 760 });
  await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: theme }]);
  const problems: string[] = [];
  page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
  page.on('pageerror', (e) => problems.push(String(e)));
  await page.authenticate({ username: 'viewer', password: PW.viewer });
  return { page, problems };
}

/** Page-side code as text: the test is compiled for Node, without the DOM's types. */
const hasCell = (selector: string, text: string) =>
  `[...document.querySelectorAll(${JSON.stringify(selector)})].some((e) => e.textContent === ${JSON.stringify(text)})`;

const cellTexts = (page: Page, selector: string) => page.$$eval(selector, (els) => els.map((e) => e.textContent ?? ''));

t.test('without credentials the page is refused and no data is shown', async (t) => {
  const page = await browser.newPage();
  t.teardown(() => page.close());
  // a navigation to / would stop at Chromium's login prompt (ERR_INVALID_AUTH_CREDENTIALS headless): ask from a page of the same origin
  await page.goto(`${base}/view/icon.svg`);
  for (const path of ['/', '/api/clients', '/api/topics', '/api/alerts', '/api/health', '/api/stream'])
    t.equal(await page.evaluate(`fetch(${JSON.stringify(path)}, { credentials: "omit" }).then((r) => r.status)`), 401, path);
  t.equal(
    await page.evaluate(`fetch("/", { credentials: "omit" }).then((r) => r.text()).then((s) => s.includes('app.js'))`),
    false,
    'no page',
  );
});

t.test(
  'clients: live list of mqtt.js clients, updated on connect and disconnect; markup in names shown as text; keyboard opens events',
  async (t) => {
    const first = await connectClient(t, b.mqttUrl, { ...pub(), clientId: HOSTILE });
    await new Promise<void>((r) => first.subscribe('plant/#', () => r()));
    const { page, problems } = await viewerPage();
    const started = Date.now();
    const nav = await page.goto(`${base}/`, { waitUntil: 'load' });
    t.equal(nav?.status(), 200);
    await page.waitForFunction(hasCell('td.id', HOSTILE));
    t.ok(Date.now() - started < 3000, `first rows in ${Date.now() - started} ms`);
    t.equal(await page.evaluate('window.__pwned'), undefined, 'no script ran from a client id');
    t.equal(await page.$$eval('table.clients img, table.clients script', (e) => e.length), 0, 'no element made from a client id');

    // the page and what it loaded: under 300 kB, in under 1 s
    const sizes = (await page.evaluate(
      `[...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')].map((e) => ({ name: e.name, bytes: e.transferSize }))`,
    )) as { name: string; bytes: number }[];
    const total = sizes.filter((s) => !s.name.includes('/api/stream')).reduce((n, s) => n + s.bytes, 0);
    t.ok(total > 10_000 && total < 300_000, `page transferred ${total} bytes`);
    const load = (await page.evaluate(`performance.getEntriesByType('navigation')[0].loadEventEnd`)) as number;
    t.ok(load < 1000, `load event after ${Math.round(load)} ms`);

    const late = await connectClient(t, b.mqttUrl, { ...pub(), clientId: 'late-joiner' });
    await page.waitForFunction(hasCell('td.id', 'late-joiner'), { timeout: 6000 });
    t.pass('a new client appears');
    late.end(true);
    await page.waitForFunction(`!(${hasCell('td.id', 'late-joiner')})`, { timeout: 6000 });
    t.pass('it disappears on disconnect');

    // keyboard: Tab to the first row, Enter opens its recent events
    await page.focus('table.clients tbody tr');
    await page.keyboard.press('Enter');
    await page.waitForSelector('aside.events li');
    const events = await cellTexts(page, 'aside.events li b');
    t.ok(events.includes('client-connected') && events.includes('subscription-granted'), `events: ${events.join(', ')}`);
    t.equal(await page.$eval('aside.events h2 .id', (e) => e.textContent), HOSTILE, 'the events panel names it as text');
    await page.screenshot({ path: join(SHOTS, 'webview-clients.png') });
    t.same(problems, [], 'no CSP violation or script error');
  },
);

t.test('topics: tree with rates and retained flags, busiest with sparklines', async (t) => {
  const c = await connectClient(t, b.mqttUrl, { ...pub(), clientId: 'plc-7' });
  c.publish('plant/line1/temp', '21.5', { retain: true });
  const timer = setInterval(() => {
    c.publish('plant/line1/temp', '21.5');
    c.publish('plant/line2/pressure', '1.2');
    c.publish('plant/<i class=x>slanted', 'x');
  }, 25);
  t.teardown(() => clearInterval(timer));
  const { page, problems } = await viewerPage();
  await page.goto(`${base}/#Topics`);
  await page.waitForFunction(`document.querySelectorAll('.topics svg.spark').length >= 2`, { timeout: 8000 });
  const levels = await cellTexts(page, '.topics table:first-of-type tbody td:first-child');
  t.ok(levels.includes('plant/'), `top level: ${levels.join(' ')}`);
  await page.click('.topics button.link');
  await page.waitForFunction(hasCell('.topics td', '<i class=x>slanted'));
  t.equal(await page.$$eval('.topics i', (e) => e.length), 0, 'a topic level with markup is text');
  await page.click('.topics tbody button.link');
  await page.waitForFunction(`[...document.querySelectorAll('.topics td')].some((e) => e.textContent.startsWith('● '))`);
  t.pass('the retained flag');
  await page.screenshot({ path: join(SHOTS, 'webview-topics.png') });
  t.same(problems, []);
});

t.test('alerts: a detection alert arrives live; the admin lifts a ban from the bans panel', async (t) => {
  const { page, problems } = await viewerPage();
  await page.goto(`${base}/#Alerts`);
  await page.waitForSelector('table.alerts');
  const wild = await connectClient(t, b.mqttUrl, { ...pub(), clientId: 'sniffer<i>x</i>' });
  await new Promise<void>((r) => wild.subscribe('#', () => r()));
  await page.waitForFunction(hasCell('table.alerts td', 'wildcard-subscription'), { timeout: 8000 });
  const row = await cellTexts(page, 'table.alerts tbody tr:first-child td');
  t.match(row[3], /sniffer<i>x<\/i>/, 'the message names the client, as text');
  t.equal(await page.$$eval('table.alerts i', (e) => e.length), 0);
  await page.waitForFunction(hasCell('td.id', banned.entity), { timeout: 8000 });
  t.pass('the ban from the ban file is listed');
  await page.screenshot({ path: join(SHOTS, 'webview-alerts.png') });
  await page.click('section button');
  await page.waitForFunction(`document.querySelector('[role=status]')?.textContent === 'ban on ${banned.entity} lifted'`, {
    timeout: 8000,
  });
  // the panel reloads GET /bans after the lift: wait for that answer, not only for the status line
  await page.waitForFunction(`!(${hasCell('td.id', banned.entity)})`, { timeout: 8000 });
  t.pass('gone from the panel');
  const after = (await page.evaluate(`fetch('/bans').then((r) => r.json())`)) as { count: number };
  t.equal(after.count, 0, 'GET /bans: lifted on the broker');
  t.same(problems, [], 'no page errors');
});

t.test('health: charts, capture sink, beats and bridges with state and last error, $SYS figures, dark theme', async (t) => {
  const { page, problems } = await viewerPage('dark');
  await page.goto(`${base}/#Health`);
  await page.waitForSelector('.uplot canvas');
  await page.waitForFunction(`!document.querySelector('.status').textContent.includes('connecting')`);
  t.equal(await page.$$eval('.uplot', (e) => e.length), 2, 'two charts');
  await page.waitForFunction(hasCell('table.sys td', 'version'), { timeout: 5000 });
  const sinkRow = await cellTexts(page, '.health > table:first-of-type tbody tr:first-child td');
  t.match(sinkRow[0], /^file:.*capture\.jsonl$/, `the capture sink: ${sinkRow.join(' | ')}`);
  await page.waitForFunction(`${hasCell('.health td', 'zeek')} && ${hasCell('.health td', 'running')}`, { timeout: 5000 });
  t.pass('the beat, running');
  await page.waitForFunction(`${hasCell('table.parts td', 'upstream')} && ${hasCell('table.parts td', 'waiting')}`, { timeout: 15_000 });
  const bridgeRow = await page.$$eval('table.parts tbody tr', (rows) =>
    rows.map((r) => [...r.querySelectorAll('td')].map((c) => c.textContent ?? '')).find((cells) => cells[0] === 'upstream'),
  );
  t.match(
    bridgeRow,
    ['upstream', 'MQTT bridge', 'waiting', /^\d+\.\d$/, '0', /ECONNREFUSED 127\.0\.0\.1:\d+ \(/],
    `the bridge: ${bridgeRow?.join(' | ')}`,
  );
  t.notOk((await page.content()).includes('bridge-pw-Kk71'), 'the bridge password is nowhere in the page');
  t.equal(await page.evaluate('document.documentElement.dataset.theme'), 'dark');
  await page.screenshot({ path: join(SHOTS, 'webview-health.png') });
  t.same(problems, []);
});
