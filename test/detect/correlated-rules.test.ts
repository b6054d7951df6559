import t from 'tap';
import { IndicatorList } from '../../detect/index.js';
import { Harness, T0, detectConfig } from './events.js';

const M = 60_000;

/** A `beats/correlate/conn` publish as capture records it (payload copied). */
function flow(h: Harness, time: number, host: string, exe: string, peer: string, direction = 'outbound', topic = 'beats/correlate/conn') {
  const [src, dst] = direction === 'inbound' ? [peer, '192.0.2.10'] : ['192.0.2.10', peer];
  return h.send('publish-received', time, {
    clientId: '$beat/correlate',
    topic,
    payload: JSON.stringify({
      uid: `C${time}`,
      source: { ip: src, port: 40000 },
      destination: { ip: dst, port: 443 },
      network: { direction },
      host: { name: host },
      process: { pid: 7, name: exe.split('/').pop(), executable: exe },
      user: { id: '1000' },
    }),
  });
}

t.test('threat-intel-process: the peer of a correlated flow is an indicator; the alert names host and process', async (t) => {
  const set = IndicatorList.parse('ip 203.0.113.0/24 c2-net\n');
  const h = new Harness({ indicators: () => set });
  flow(h, T0, 'ws-7', '/usr/bin/curl', '198.51.100.1');
  flow(h, T0, 'ws-7', '/usr/bin/curl', '203.0.113.50');
  flow(h, T0, 'web-1', '/usr/sbin/nginx', '203.0.113.9', 'inbound');
  flow(h, T0, 'ws-7', '/usr/bin/curl', '203.0.113.50', 'outbound', 'beats/zeek/conn');
  h.send('publish-received', T0, { clientId: '$beat/correlate', topic: 'beats/correlate/conn', payload: '{"host":' });
  h.send('publish-received', T0, {
    clientId: '$beat/correlate',
    topic: 'beats/correlate/conn',
    payload: JSON.stringify({ host: { name: 'x' } }),
  });
  const got = h.raised('threat-intel-process');
  t.same(
    got.map((a) => a.message),
    [
      'threat-intel-process: curl (pid 7, /usr/bin/curl, user 1000) on ws-7 had a flow to 203.0.113.50, an OpenCTI indicator (c2-net)',
      'threat-intel-process: nginx (pid 7, /usr/sbin/nginx, user 1000) on web-1 had a flow from 203.0.113.9, an OpenCTI indicator (c2-net)',
    ],
  );
  t.equal(got[1].source?.ip, '192.0.2.10', 'source.ip is the host’s address');
  t.equal(got[1].destination?.ip, '203.0.113.9', 'destination.ip the indicator');
  t.equal(new Harness().send('publish-received', T0, {}).length, 0);
});

t.test('new-network-process: learned per host for the learning period, then each new process once', async (t) => {
  const h = new Harness({ config: detectConfig('detect_rule new-network-process learn 10m') });
  flow(h, T0, 'ws-7', '/usr/bin/curl', '198.51.100.1');
  flow(h, T0 + 5 * M, 'ws-7', '/usr/bin/ssh', '198.51.100.2');
  flow(h, T0 + 11 * M, 'ws-7', '/usr/bin/curl', '198.51.100.3');
  flow(h, T0 + 11 * M, 'ws-7', '/tmp/.x/miner', '198.51.100.4');
  flow(h, T0 + 12 * M, 'ws-7', '/tmp/.x/miner', '198.51.100.5');
  flow(h, T0 + 12 * M, 'db-2', '/usr/sbin/postgres', '198.51.100.6', 'inbound');
  const got = h.raised('new-network-process');
  t.same(
    got.map((a) => a.mqprobe.detect.entity),
    ['ws-7 /tmp/.x/miner'],
    'only the process first seen after ws-7’s learning period; db-2 starts its own',
  );
  t.equal(got[0].event.risk_score, 21, 'informational');
});
