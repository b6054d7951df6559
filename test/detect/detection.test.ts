import t from 'tap';
import pino from 'pino';
import { Registry } from 'prom-client';
import { createDetection, type AlertEvent } from '../../detect/index.js';
import { defaultDetectConfig } from '../../detect/config.js';
import { IndicatorExchange, IndicatorList } from '../../detect/indicators.js';
import { Stream, T0 } from './events.js';

const log = pino({ level: 'silent' });
const hashSub = (s: Stream, id: string, time = T0) =>
  s.event('subscription-granted', time, { clientId: id, subscriptions: [{ topic: '#', qos: 0, granted_qos: 0 }] });

t.test('createDetection: raises through capture, publishes per rule, counts on /metrics, summarises on stop', async (t) => {
  const raised: AlertEvent[] = [];
  const published: { topic: string; payload: string }[] = [];
  const metrics = new Registry();
  const d = createDetection(defaultDetectConfig(), {
    raise: (a) => {
      raised.push(a);
      return { ...a, event: { ...a.event, sequence: 99 } };
    },
    publish: (topic, payload) => published.push({ topic, payload }),
    log,
    metrics,
  });
  t.teardown(() => d.stop());
  const s = new Stream();
  d.observe(hashSub(s, 'snoop'));
  d.observe({ ...hashSub(s, 'loop'), event: { kind: 'alert', action: 'alert-raised' } });
  t.equal(raised.length, 1, 'one alert; alert events themselves are not observed');
  t.equal(published[0].topic, '$SYS/broker/alerts/wildcard-subscription');
  t.equal(JSON.parse(published[0].payload).event.sequence, 99, 'what is published is what capture recorded');
  t.match(await metrics.metrics(), /mqprobe_detect_alerts_total\{rule="wildcard-subscription",action="alert-raised"\} 1/);
  for (let i = 0; i < 3; i++) d.observe(s.event('client-connected', T0 + 1000 + i, { clientId: 'c', ip: '10.0.0.1' }));
  for (let i = 0; i < 12; i++)
    d.observe(s.event('connection-refused', T0 + 2000 + i, { ip: '10.0.0.9', user: 'x', reason: 'bad-credentials' }));
  t.equal(raised.filter((a) => a.rule.name === 'auth-brute-force').length, 1);
  for (let i = 0; i < 10; i++)
    d.observe(s.event('connection-refused', T0 + 3000 + i, { ip: '10.0.0.9', user: 'x', reason: 'bad-credentials' }));
  d.stop();
  d.stop();
  t.equal(raised.filter((a) => a.event.action === 'alert-summary').length, 1, 'stop summarises the suppression still running, once');
  d.observe(hashSub(s, 'after-stop'));
  t.equal(raised.filter((a) => a.mqtt?.client_id === 'after-stop').length, 0, 'nothing after stop');
});

t.test('createDetection: detect off raises nothing; a failing sink or indicator set costs nothing else', async (t) => {
  const off = defaultDetectConfig();
  off.enabled = false;
  let n = 0;
  const d = createDetection(off, { raise: () => void n++, log });
  d.observe(hashSub(new Stream(), 'snoop'));
  d.stop();
  t.equal(n, 0, 'detect off');

  const indicators = new IndicatorExchange();
  indicators.offer({
    matchIp: () => {
      throw new Error('broken');
    },
    matchDomain: () => undefined,
    matchUrl: () => undefined,
    matchHash: () => undefined,
  });
  let raisedOk = 0;
  const e = createDetection(defaultDetectConfig(), {
    raise: (a) => {
      if (a.mqtt?.client_id === 'first') throw new Error('sink gone');
      raisedOk++;
    },
    publish: () => {
      throw new Error('publish failed');
    },
    log,
    indicators,
  });
  t.teardown(() => e.stop());
  const s = new Stream();
  t.doesNotThrow(() => e.observe(hashSub(s, 'first')));
  t.doesNotThrow(
    () => e.observe(s.event('client-connected', T0, { clientId: 'x', ip: '198.51.100.1' })),
    'a throwing indicator lookup is no match',
  );
  e.observe(hashSub(s, 'second'));
  t.equal(raisedOk, 1, 'the next alert is raised after a failed one');
  indicators.offer(IndicatorList.parse('ip 198.51.100.0/24 c2'));
  let intel = 0;
  const f = createDetection(defaultDetectConfig(), { raise: (a) => void (a.rule.name === 'threat-intel' && intel++), log, indicators });
  t.teardown(() => f.stop());
  f.observe(s.event('client-connected', T0, { clientId: 'y', ip: '198.51.100.7' }));
  t.equal(intel, 1, 'the OpenCTI set offered through the indicator exchange is used when it appears');
});
