import t from 'tap';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { defaultDetectConfig, type DetectConfig } from '../../detect/config.js';
import { RULE_SPECS } from '../../detect/rules/index.js';
import { Harness, T0 } from './events.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Every rule with max_tracked set to `n` (and the first-seen rules learning for only a second). */
function config(n: number): DetectConfig {
  const pos = { file: 'test', line: 1 };
  const rules: DetectConfig['rules'] = new Map();
  for (const spec of RULE_SPECS) {
    const params = new Map<string, { value: string; pos: typeof pos }>();
    if (spec.params.some((p) => p.name === 'max_tracked')) params.set('max_tracked', { value: String(n), pos });
    if (spec.params.some((p) => p.name === 'learn')) params.set('learn', { value: '1s', pos });
    rules.set(spec.name, { params, pos });
  }
  return { ...defaultDetectConfig(), rules };
}

let n = 0;
const rand = () => (n = (Math.imul(n, 1103515245) + 12345) >>> 0);
const randomIp = () => `${(rand() >>> 24) | 1}.${rand() & 255}.${rand() & 255}.${rand() & 255}`;

/** One event from a hostile source: every field new. */
function hostile(h: Harness, time: number): void {
  const id = `r${rand().toString(36)}${rand().toString(36)}`;
  const ip = randomIp();
  switch (rand() % 4) {
    case 0:
      h.engine.process(h.stream.event('client-connected', time, { ip, user: `u${rand()}`, clientId: id }));
      return;
    case 1:
      h.engine.process(h.stream.event('connection-refused', time, { ip, user: `u${rand()}`, clientId: id, reason: 'bad-credentials' }));
      return;
    case 2:
      h.engine.process(
        h.stream.event('subscription-granted', time, {
          ip,
          clientId: id,
          subscriptions: [{ topic: `t/${rand()}`, qos: 0, granted_qos: 0 }],
        }),
      );
      return;
    default:
      h.engine.process(h.stream.event('publish-received', time, { ip, clientId: id, topic: `t/${rand()}/${rand()}`, size: rand() & 4095 }));
  }
}

function heapAfter(h: Harness, events: number, from: number): number {
  for (let i = 0; i < events; i++) hostile(h, T0 + (from + i) * 2);
  gc();
  return process.memoryUsage().heapUsed;
}

t.test('memory stays bounded under random client ids, addresses, users and topics', async (t) => {
  const h = new Harness({ config: config(2000) });
  const warm = heapAfter(h, 60_000, 0); // every LRU full
  const later = heapAfter(h, 240_000, 60_000); // four times as many new entities again
  const grown = later - warm;
  t.comment(`heap after 60k hostile events ${(warm / 1048576).toFixed(1)} MiB, after 300k ${(later / 1048576).toFixed(1)} MiB`);
  t.ok(grown < 8 * 1048576, `the heap does not grow with the number of entities (grew ${(grown / 1048576).toFixed(1)} MiB)`);
  t.equal(h.engine.stats.events, 300_000);
  t.ok(h.engine.stats.alerts > 0, 'the hostile stream did raise alerts');
  // 300k events over 600 s of event time: at most max_alerts (100) a minute per rule get through
  t.ok(h.engine.stats.alerts <= 11 * 100 * RULE_SPECS.length, `alerts stay within max_alerts a minute per rule (${h.engine.stats.alerts})`);
});

t.test('max_alerts: beyond it a rule’s alerts are summarised once a minute', async (t) => {
  const h = new Harness();
  for (let i = 0; i < 250; i++)
    h.send('subscription-granted', T0 + i * 100, { clientId: `snoop-${i}`, subscriptions: [{ topic: '#', qos: 0, granted_qos: 0 }] });
  t.equal(h.raised('wildcard-subscription').length, 100, '100 alerts in the first minute');
  h.send('client-connected', T0 + 61_000, { clientId: 'tick' });
  const summary = h.alerts.find((a) => a.event.action === 'alert-summary');
  t.equal(summary?.event.count, 150, 'then one summary of the 150 held back');
  t.equal(summary?.mqprobe.detect.entity, 'rule wildcard-subscription');
  t.match(summary?.message, /150 more alerts \(over 100 a minute\) held back/);
});
