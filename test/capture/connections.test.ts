/** Connection facts in events: TLS client certificates (ECS and HICAP), WebSocket listeners, session takeover. */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestBroker, tempDir, type Teardown } from '../helpers/broker.js';
import { makePki } from '../helpers/certs.js';
import { connectClient, until } from '../helpers/mqtt.js';
import { readEvents } from './session.js';

/** A TLS listener requiring a client certificate, capture to a file, and a client "dev42" connected with its certificate. */
async function tlsSession(t: Teardown, captureLines: string) {
  const pki = makePki();
  const dev = pki.client('dev42');
  const dir = tempDir();
  const out = join(dir, 'capture.ndjson');
  const b = await startTestBroker(
    t,
    `listener 0 127.0.0.1\ncafile ${pki.caCert}\ncertfile ${pki.serverCert}\nkeyfile ${pki.serverKey}\nrequire_certificate true\nallow_anonymous true\ncapture_sink file ${out}\n${captureLines}`,
    { dir },
  );
  const c = await connectClient(t, `mqtts://localhost:${b.port}`, {
    clientId: 'dev42',
    ca: readFileSync(pki.caCert),
    cert: readFileSync(dev.cert),
    key: readFileSync(dev.key),
  });
  return { b, c, out };
}

t.test('TLS listener with a client certificate: tls.* in ECS', async (t) => {
  const { b, c, out: ecs } = await tlsSession(t, '');
  await c.publishAsync('home/t1', '21.5', { qos: 1 });
  await c.endAsync();
  await b.broker.close();
  const events = readEvents(ecs);
  const connected = events.find((e) => e.event.action === 'client-connected');
  t.match(connected, {
    tls: {
      established: true,
      version: /^1\.[23]$/,
      version_protocol: 'tls',
      cipher: String,
      client: { subject: /CN=dev42/, issuer: /CN=mqprobe test CA/, x509: { serial_number: /^[0-9A-F]{2}(:[0-9A-F]{2})+$/ } },
    },
    observer: { ingress: { interface: { name: `tls 127.0.0.1:${b.port}` } } },
  });
  t.match(
    events.find((e) => e.event.action === 'connection-opened'),
    { tls: { established: true } },
  );
});

t.test('HICAP over TLS: sslCN and sslSN on PUBLISH and SUBSCRIBE', async (t) => {
  const { b, c, out } = await tlsSession(t, 'capture_format hicap\ncapture_payload full\n');
  await c.subscribeAsync('home/#');
  await c.publishAsync('home/t1', '21.5', { qos: 1 });
  await c.endAsync();
  await b.broker.close();
  const lines = readEvents(out);
  const pub = lines.find((l) => l.mqtt.action === 'PUBLISH')!;
  t.match(pub, { mqtt: { sslSN: /^[0-9A-F]{2}(:[0-9A-F]{2})+$/, sslCN: 'dev42', topic: 'home/t1', payload: 'MjEuNQ==' } });
  t.same(
    Object.keys(pub.mqtt),
    ['action', 'sslSN', 'sslCN', 'topic', 'clientIP', 'port', 'clientID', 'tsUTC', 'tsLocal', 'payload'],
    "the fork's field order",
  );
  t.match(
    lines.find((l) => l.mqtt.action === 'SUBSCRIBE'),
    { mqtt: { sslCN: 'dev42', topic: 'home/#' } },
  );
});

t.test('WebSocket listener: network.application websocket', async (t) => {
  const dir = tempDir();
  const out = join(dir, 'ws.ndjson');
  const b = await startTestBroker(t, `listener 0 127.0.0.1\nprotocol websockets\nallow_anonymous true\ncapture_sink file ${out}\n`, {
    dir,
  });
  const c = await connectClient(t, `ws://127.0.0.1:${b.port}`, { clientId: 'browser' });
  await c.publishAsync('w/t', 'x', { qos: 1 });
  await c.endAsync();
  await b.broker.close();
  t.match(
    readEvents(out).find((e) => e.event.action === 'publish-received'),
    {
      network: { protocol: 'mqtt', transport: 'tcp', application: 'websocket' },
      source: { ip: '127.0.0.1' },
      observer: { ingress: { interface: { name: `ws 127.0.0.1:${b.port}` } } },
    },
  );
});

t.test('a second connection with the same client id: the first is disconnected with reason session-taken-over', async (t) => {
  const dir = tempDir();
  const out = join(dir, 'takeover.ndjson');
  const b = await startTestBroker(t, `listener 0 127.0.0.1\nallow_anonymous true\ncapture_sink file ${out}\n`, { dir });
  const first = await connectClient(t, b.mqttUrl, { clientId: 'same' });
  const second = await connectClient(t, b.mqttUrl, { clientId: 'same' });
  await until(() => !first.connected, 5000, 'the first connection to be closed');
  await second.endAsync();
  await b.broker.close();
  const reasons = readEvents(out)
    .filter((e) => e.event.action === 'client-disconnected')
    .map((e) => e.event.reason);
  t.same(reasons, ['session-taken-over', 'client-disconnect']);
});
