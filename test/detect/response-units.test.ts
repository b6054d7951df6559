import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { loadConfig } from '../../app/config.js';
import { tempDir } from '../helpers/broker.js';
import { BanList, fileStore, memoryStore } from '../../detect/response/bans.js';
import { createResponses, EVENTS_PER_MINUTE } from '../../detect/response/index.js';
import { entityFromPath } from '../../detect/response/http.js';
import type { ConnectFacts, ConnectGuard } from '../../broker/engine/api.js';
import type { AlertEvent } from '../../detect/alert.js';
import { RULE_SPECS } from '../../detect/rules/index.js';

const log = pino({ level: 'silent' });
const RULES = RULE_SPECS.map((r) => r.name);

function detectConfig(lines: string) {
  const file = join(tempDir(), 'mqprobe.conf');
  writeFileSync(file, `listener 0 127.0.0.1\n${lines}\n`);
  return loadConfig(file).detect;
}

t.test(
  'configuration: detect_response, detect_allow, detect_ban_answer, detect_response_mode errors name file, line and key',
  async (t) => {
    const bad: [string, RegExp][] = [
      ['detect_response auth-brute-force ban', /:2: detect_response: ban needs a duration/],
      ['detect_response auth-brute-force ban soon', /:2: detect_response: expected a duration/],
      ['detect_response auth-brute-force ban 400d', /:2: detect_response: expected a duration between 1s and 365d/],
      ['detect_response auth-brute-force disconnect 5m', /:2: detect_response: disconnect takes no duration/],
      ['detect_response auth-brute-force kick', /:2: detect_response: expected one of ban\|disconnect, got "kick"/],
      ['detect_allow 10.0.0.0/33', /:2: detect_allow: expected an address, a CIDR range/],
      ['detect_allow client:a*b*', /:2: detect_allow: expected a name or a prefix ending in \*/],
      ['detect_allow user:', /:2: detect_allow: expected a name or a prefix/],
      ['detect_ban_answer drop', /:2: detect_ban_answer: expected one of connack\|close/],
      ['detect_response_mode dry', /:2: detect_response_mode: expected one of act\|log/],
    ];
    for (const [line, err] of bad) t.throws(() => detectConfig(line), err, line);
    const ok = detectConfig(
      'detect_response client-flapping ban 5m\ndetect_response publish-rate disconnect\ndetect_allow 10.0.0.0/8\ndetect_allow ::1\ndetect_allow client:plc-*\ndetect_allow user:ops\ndetect_ban_answer close\ndetect_response_mode log',
    ).response;
    t.same(ok.actions.get('client-flapping')?.action, { kind: 'ban', ms: 300_000 });
    t.same(ok.actions.get('publish-rate')?.action, { kind: 'disconnect' });
    t.same([ok.allow.cidrs.length, ok.allow.clients, ok.allow.users, ok.banAnswer, ok.mode], [2, ['plc-*'], ['ops'], 'close', 'log']);
    const unknown = detectConfig('detect_response no-such-rule ban 1m').response;
    t.throws(
      () =>
        createResponses(unknown, { broker: recorder().broker, bans: new BanList(memoryStore()), emit: () => undefined, log, rules: RULES }),
      /:2: detect_response: unknown or switched-off rule "no-such-rule"/,
    );
  },
);

/** The broker side the responses drive, recorded: which sessions a disconnect picked and what the guard says. */
function recorder(sessions: ConnectFacts[] = []) {
  const r = {
    guard: undefined as ConnectGuard | undefined,
    closed: [] as string[],
    retained: [] as string[],
    broker: {
      guardConnects: (g: ConnectGuard) => void (r.guard = g),
      disconnect: (match: (w: ConnectFacts) => boolean) => {
        const hit = sessions.filter(match);
        r.closed.push(...hit.map((s) => s.clientId));
        return hit.length;
      },
      publishRetained: (_topic: string, payload: string) => void r.retained.push(payload),
    },
  };
  return r;
}

const alert = (rule: string, entity: string, extra: Partial<AlertEvent> = {}): AlertEvent =>
  ({
    '@timestamp': new Date().toISOString(),
    message: '',
    event: { kind: 'alert', action: 'alert-raised' },
    rule: { name: rule, description: '', ruleset: 'mqprobe' },
    mqprobe: { detect: { entity, evidence: {}, suppress_s: 300 } },
    ...extra,
  }) as AlertEvent;

const settle = () => new Promise((r) => setImmediate(r));

t.test('responses: client and user bans, disconnect once, topic rules act on the publisher, allow-list and internal clients', async (t) => {
  const sessions = [
    { ip: '10.0.0.1', clientId: 'pump-7', username: 'dev' },
    { ip: '10.0.0.2', clientId: 'plc-1', username: 'dev' },
    { ip: '10.0.0.3', clientId: 'flooder', username: 'x' },
    { ip: '10.0.0.4', clientId: '$beat/zeek', username: undefined },
  ];
  const rec = recorder(sessions);
  const events: { event: { action: string }; mqprobe?: { response?: Record<string, unknown> } }[] = [];
  const bans = new BanList(memoryStore());
  const cfg = detectConfig(
    'detect_response client-flapping ban 5m\ndetect_response new-source-network ban 1h\ndetect_response topic-rate disconnect\ndetect_allow client:plc-*',
  ).response;
  const r = createResponses(cfg, { broker: rec.broker, bans, emit: (e) => void events.push(e as never), log, rules: RULES });
  await r.start();
  t.teardown(() => r.stop());

  r.onAlert(alert('client-flapping', 'client pump-7'));
  await settle();
  t.same(rec.closed, ['pump-7'], 'the client ban disconnects its session');
  t.equal(rec.guard!({ clientId: 'pump-7', ip: '10.9.9.9' }), 'connack', 'and refuses it from any address');
  t.equal(rec.guard!({ clientId: 'pump-8', ip: '10.0.0.1' }), undefined, 'not others');

  r.onAlert(alert('new-source-network', 'user dev'));
  await settle();
  t.same(rec.closed, ['pump-7', 'pump-7'], "a user ban ends the user's sessions but the allow-listed plc-1 (pump-7 is recorded again)");
  t.equal(rec.guard!({ clientId: 'plc-1', username: 'dev' }), undefined, 'an allow-listed client is never refused');
  t.equal(rec.guard!({ clientId: 'other', username: 'dev' }), 'connack');

  r.onAlert(alert('topic-rate', 'topic plant/1', { mqtt: { client_id: 'flooder', topic: 'plant/1' } }));
  await settle();
  t.equal(rec.closed.at(-1), 'flooder', 'a topic rule disconnects the client that published');
  t.equal(rec.guard!({ clientId: 'flooder' }), undefined, 'disconnect bans nothing');

  r.onAlert(alert('client-flapping', 'client $beat/zeek'));
  r.onAlert(alert('client-flapping', 'client pump-9', { event: { kind: 'alert', action: 'alert-summary' } } as never));
  r.onAlert(alert('auth-brute-force', 'ip 10.0.0.5'));
  await settle();
  t.notOk(
    bans.list().some((b) => b.entity === 'client $beat/zeek'),
    'internal clients are never banned',
  );
  t.notOk(
    bans.list().some((b) => b.entity === 'client pump-9'),
    'summaries do not act',
  );
  t.notOk(
    bans.list().some((b) => b.entity === 'ip 10.0.0.5'),
    'rules without a detect_response do not act',
  );
  t.same(
    events.map((e) => e.event.action),
    ['response-ban', 'response-ban', 'response-disconnect'],
  );
  t.match(JSON.parse(rec.retained.at(-1)!), { count: 2 }, '$SYS/broker/bans lists the bans');

  await bans.remove('client pump-7');
  await settle();
  t.equal(events.at(-1)?.event.action, 'ban-lifted');
  t.equal(rec.guard!({ clientId: 'pump-7' }), undefined, 'lifted');
});

t.test('responses: rate limited to EVENTS_PER_MINUTE events, the next one says how many were held back; bans still made', async (t) => {
  const rec = recorder();
  const events: { mqprobe: { response: Record<string, unknown> } }[] = [];
  const bans = new BanList(memoryStore());
  const r = createResponses(detectConfig('detect_response auth-brute-force ban 10m').response, {
    broker: rec.broker,
    bans,
    emit: (e) => void events.push(e as never),
    log,
    rules: RULES,
  });
  await r.start();
  t.teardown(() => r.stop());
  for (let i = 0; i < EVENTS_PER_MINUTE + 50; i++) r.onAlert(alert('auth-brute-force', `ip 10.1.${i >> 8}.${i & 255}`));
  await settle();
  t.equal(bans.size, EVENTS_PER_MINUTE + 50, 'every address banned');
  // within the same minute (a minute boundary in the middle would let more through, never fewer)
  t.ok(events.length <= EVENTS_PER_MINUTE + 50 && events.length >= EVENTS_PER_MINUTE, `${events.length} events`);
  if (events.length === EVENTS_PER_MINUTE) t.equal(rec.guard!({ clientId: 'x', ip: '10.1.0.140' }), 'connack');
});

t.test('ban file: survives a reload; a damaged file is reported and ignored; expired bans are lifted', async (t) => {
  const dir = tempDir();
  const path = join(dir, 'bans.json');
  const a = new BanList(fileStore(path, log));
  await a.start();
  const now = Date.now();
  await a.add({
    entity: 'ip 10.0.0.7',
    rule: 'auth-brute-force',
    since: new Date(now).toISOString(),
    until: new Date(now + 60_000).toISOString(),
  });
  await a.add({
    entity: 'user old',
    rule: 'auth-brute-force',
    since: new Date(now).toISOString(),
    until: new Date(now + 1000).toISOString(),
  });
  const b = new BanList(fileStore(path, log));
  await b.start();
  t.same(
    b.list().map((x) => x.entity),
    ['ip 10.0.0.7', 'user old'],
  );
  await b.expire(now + 2000);
  t.same(
    b.list().map((x) => x.entity),
    ['ip 10.0.0.7'],
    'the expired one lifted',
  );
  const lines: string[] = [];
  const rec = pino({ level: 'error' }, { write: (s: string) => void lines.push(s) });
  for (const junk of [
    '{not json',
    '{"bans": 7}',
    '\u0000\u0001binary',
    JSON.stringify({ bans: [{ entity: 'topic x', rule: 'r', since: '', until: '2099-01-01' }, null, 'x'] }),
  ]) {
    writeFileSync(path, junk);
    const c = new BanList(fileStore(path, rec));
    await c.start();
    t.equal(c.size, 0, `nothing loaded from ${JSON.stringify(junk.slice(0, 20))}`);
  }
  t.ok(lines.filter((l) => l.includes('ignoring the damaged ban file')).length >= 3, 'damaged files reported');
});

t.test('DELETE /bans/<entity>: hostile path values', async (t) => {
  t.equal(entityFromPath('ip:10.0.0.7'), 'ip 10.0.0.7');
  t.equal(entityFromPath('ip 10.0.0.7'), 'ip 10.0.0.7');
  t.equal(entityFromPath('client:a:b c'), 'client a:b c');
  t.equal(entityFromPath('ip6:::1'), undefined);
  t.equal(entityFromPath('topic:x'), undefined);
  t.equal(entityFromPath('user:'), undefined);
  t.equal(entityFromPath(`user:${'x'.repeat(70_000)}`), undefined, 'oversized');
  t.equal(entityFromPath('\u0000'), undefined);
});
