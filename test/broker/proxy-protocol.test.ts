import t from 'tap';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqttPacket from 'mqtt-packet';
import { freePort, spawnCli, tempDir, waitForPort, type Teardown } from '../helpers/broker.js';
import { until } from '../helpers/mqtt.js';
import { killAndWait } from '../helpers/mosquitto.js';
import { configError } from '../helpers/config.js';
import { parseProxyHeader } from '../../broker/proxy-protocol.js';

/** A raw MQTT 3.1.1 client from a chosen loopback address: CONNECT, wait for CONNACK, DISCONNECT. */
async function connectFrom(port: number, localAddress: string, clientId: string, prefix = Buffer.alloc(0)): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress }, () => {
      s.write(
        Buffer.concat([
          prefix,
          mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean: true, keepalive: 30 }),
        ]),
      );
    });
    let got = Buffer.alloc(0);
    s.on('data', (d) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 4) s.end(mqttPacket.generate({ cmd: 'disconnect' }));
    });
    s.on('close', () => resolve(got));
    s.on('error', reject);
  });
}

async function startMqprobe(t: Teardown, dir: string): Promise<{ v1: number; v2: number; output: () => string; capture: string }> {
  const v1 = await freePort();
  const v2 = await freePort();
  const capture = join(dir, 'capture.ndjson');
  writeFileSync(
    join(dir, 'mqprobe.conf'),
    `listener ${v1} 127.0.0.1\nenable_proxy_protocol 1\nlistener ${v2} 127.0.0.1\nenable_proxy_protocol 2\nallow_anonymous true\nuser root\ndetect off\nlog_dest stdout\ncapture_sink file ${capture}\n`,
  );
  const p = spawnCli(t, ['-c', join(dir, 'mqprobe.conf')]);
  await until(() => / running$/m.test(p.output()), 15_000, 'running');
  return { v1, v2, output: p.output, capture };
}

const sourceOf = (capture: string, clientId: string) =>
  (existsSync(capture) ? readFileSync(capture, 'utf8') : '')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { event: { action: string }; mqtt?: { client_id?: string }; source?: { ip?: string; port?: number } })
    .find((e) => e.event.action === 'client-connected' && e.mqtt?.client_id === clientId)?.source;

t.test('behind a real HAProxy (send-proxy and send-proxy-v2): the client address reaches log and capture', async (t) => {
  const dir = tempDir('mqprobe-proxy-');
  const b = await startMqprobe(t, dir);
  const f1 = await freePort();
  const f2 = await freePort();
  writeFileSync(
    join(dir, 'haproxy.cfg'),
    `global
  maxconn 100
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend v1
  bind 127.0.0.1:${f1}
  default_backend mqprobe_v1
backend mqprobe_v1
  server s1 127.0.0.1:${b.v1} send-proxy
frontend v2
  bind 127.0.0.1:${f2}
  default_backend mqprobe_v2
backend mqprobe_v2
  server s2 127.0.0.1:${b.v2} send-proxy-v2
`,
  );
  const haproxy = spawn('haproxy', ['-db', '-f', join(dir, 'haproxy.cfg')], { stdio: 'ignore' });
  t.teardown(() => killAndWait(haproxy));
  await waitForPort(f1);
  await waitForPort(f2);
  t.same([...(await connectFrom(f1, '127.0.0.7', 'via-v1'))].slice(0, 4), [0x20, 2, 0, 0], 'v1: CONNACK accepted');
  t.same([...(await connectFrom(f2, '127.0.0.8', 'via-v2'))].slice(0, 4), [0x20, 2, 0, 0], 'v2: CONNACK accepted');
  await until(() => /as via-v2/.test(b.output()), 10_000, 'v2 connect line');
  t.match(
    b.output(),
    /New client connected from 127\.0\.0\.7:\d+ as via-v1 \(p2, c1, k30\)\./,
    "v1: the client address, not the proxy's 127.0.0.1",
  );
  t.match(b.output(), /New client connected from 127\.0\.0\.8:\d+ as via-v2 \(p2, c1, k30\)\./, 'v2: the client address');
  await until(() => !!sourceOf(b.capture, 'via-v2'), 10_000, 'capture events');
  t.equal(sourceOf(b.capture, 'via-v1')?.ip, '127.0.0.7', 'capture source.ip (v1)');
  t.equal(sourceOf(b.capture, 'via-v2')?.ip, '127.0.0.8', 'capture source.ip (v2)');
});

t.test('hostile or missing PROXY headers close that connection with a log line; the broker goes on', async (t) => {
  const dir = tempDir('mqprobe-proxy-');
  const b = await startMqprobe(t, dir);
  const send = (port: number, bytes: Buffer) =>
    new Promise<void>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
      s.on('close', () => resolve());
      s.on('error', () => resolve());
    });
  const v2sig = Buffer.from('\r\n\r\n\0\r\nQUIT\n', 'binary');
  await send(
    b.v1,
    mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'no-header', clean: true, keepalive: 30 }),
  );
  await send(b.v1, Buffer.from(`PROXY TCP4 ${'9'.repeat(200)}\r\n`));
  await send(b.v1, Buffer.from('PROXY TCP4 1.2.3.999 5.6.7.8 1 2\r\n'));
  await send(b.v2, Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n'));
  await send(b.v2, Buffer.concat([v2sig, Buffer.from([0x21, 0x11, 0xff, 0xff])]));
  await send(b.v2, Buffer.concat([v2sig, Buffer.from([0x31, 0x11, 0, 12]), Buffer.alloc(12)]));
  await until(() => (b.output().match(/bad PROXY protocol header/g) ?? []).length >= 6, 10_000, 'six refusals logged');
  const out = b.output();
  t.match(out, /bad PROXY protocol header from 127\.0\.0\.1:\d+: not a PROXY protocol v1 header\./, 'MQTT without header');
  t.match(out, /PROXY v1 header longer than 107 bytes/, 'oversized v1');
  t.match(out, /bad TCP4 address in PROXY v1 header/, 'bad address');
  t.match(out, /not a PROXY protocol v2 header/, 'v1 header on a v2 listener');
  t.match(out, /PROXY v2 header of 65535 bytes \(at most 4096\)/, 'oversized v2');
  t.match(out, /PROXY v2 header with version 3/, 'bad v2 version');
  t.match(out, /Client <unknown> disconnected due to protocol error\./, "Mosquitto's disconnect line");
  t.same(
    [...(await connectFrom(b.v1, '127.0.0.1', 'good', Buffer.from('PROXY TCP4 10.1.2.3 127.0.0.1 40000 1883\r\n')))].slice(0, 4),
    [0x20, 2, 0, 0],
    'a good client still connects',
  );
  await until(() => /New client connected from 10\.1\.2\.3:40000 as good/.test(b.output()), 10_000, 'address from the header');
});

t.test('PROXY headers by the documented wire format (proxy-protocol.txt): IPv6, UNKNOWN, LOCAL, split reads', async (t) => {
  const v6 = Buffer.concat([
    Buffer.from('\r\n\r\n\0\r\nQUIT\n', 'binary'),
    Buffer.from([0x21, 0x21, 0, 36]),
    Buffer.from('20010db8000000000000000000000001', 'hex'),
    Buffer.alloc(16),
    Buffer.from([0x9c, 0x40, 0x07, 0x5b]),
    Buffer.from('MQTT'),
  ]);
  t.same(parseProxyHeader(v6, 2), { address: { remoteAddress: '2001:db8::1', remotePort: 40000 }, length: 52 }, 'IPv6 source');
  t.equal(parseProxyHeader(v6.subarray(0, 20), 2), undefined, 'a partial header waits for more bytes');
  const local = Buffer.concat([Buffer.from('\r\n\r\n\0\r\nQUIT\n', 'binary'), Buffer.from([0x20, 0x00, 0, 0])]);
  t.same(parseProxyHeader(local, 2), { address: {}, length: 16 }, 'LOCAL (health check) keeps the socket address');
  t.same(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n'), 1), { address: {}, length: 15 }, 'UNKNOWN keeps the socket address');
  t.same(
    parseProxyHeader(Buffer.from('PROXY TCP6 2001:db8::7 ::1 5000 1883\r\n'), 1)?.address,
    { remoteAddress: '2001:db8::7', remotePort: 5000 },
    'v1 TCP6',
  );
  t.throws(() => parseProxyHeader(Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 70000 1\r\n'), 1), /bad port/, 'port out of range');
});

t.test('enable_proxy_protocol settings mqprobe cannot serve stop the start', async (t) => {
  configError(t, 'listener 1883\nenable_proxy_protocol 3\n', /enable_proxy_protocol must be 1 or 2/, 'version 3');
  configError(
    t,
    `listener 8883\ncertfile /x.crt\nkeyfile /x.key\nenable_proxy_protocol 1\n`,
    /not supported by mqprobe on a TLS listener/,
    'TLS listener',
  );
  configError(
    t,
    'listener 9001\nprotocol websockets\nenable_proxy_protocol 2\n',
    /not supported by mqprobe on a websockets listener/,
    'websockets listener',
  );
});
