import t from 'tap';
import net from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import WebSocket from 'ws';
import { spawnCli, startTestBroker, tempDir } from '../helpers/broker.js';
import { conf } from '../helpers/config.js';
import { until } from '../helpers/mqtt.js';
import { loadConfig } from '../../broker/config/load.js';

/**
 * Mosquitto 2.1's newer keys (the installed Mosquitto is 2.0.11, which knows none of them, so
 * these run against mqprobe only, with the semantics of mosquitto.conf(5) 2.1).
 */

/** CONNACK return code (MQTT 5: reason code) for a raw CONNECT (protocol version 3 = MQTT 3.1, 4 = 3.1.1, 5); -1 when closed without one. */
async function connack(port: number, opts: { version?: 3 | 4 | 5; clientId?: string; username?: string } = {}): Promise<number> {
  const version = opts.version ?? 4;
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () =>
      s.write(
        mqttPacket.generate({
          cmd: 'connect',
          protocolId: version === 3 ? 'MQIsdp' : 'MQTT',
          protocolVersion: version,
          clientId: opts.clientId ?? 'c',
          clean: true,
          keepalive: 30,
          username: opts.username,
        }),
      ),
    );
    s.once('data', (d) => {
      resolve(d[0] === 0x20 ? d[3] : -1);
      s.end();
    });
    s.on('close', () => resolve(-1));
    s.on('error', () => resolve(-1));
  });
}

t.test('listener_allow_anonymous overrides allow_anonymous per listener', async (t) => {
  const b = await startTestBroker(t, 'allow_anonymous true\nlistener 0 127.0.0.1\nlistener_allow_anonymous false\nlistener 0 127.0.0.1\n');
  const [closed, open] = b.broker.ports;
  t.equal(await connack(closed), 5, 'refused where listener_allow_anonymous false');
  t.equal(await connack(open), 0, 'accepted on the other listener');
});

t.test('listener_auto_id_prefix names assigned client ids on that listener', async (t) => {
  const b = await startTestBroker(t, 'allow_anonymous true\nlistener 0 127.0.0.1\nlistener_auto_id_prefix plant7-\n');
  const ids: string[] = [];
  b.broker.aedes.on('clientReady', (c) => ids.push(c.id));
  t.equal(await connack(b.port, { clientId: '' }), 0);
  await until(() => ids.length > 0, 5_000, 'client ready');
  t.match(ids[0], /^plant7-[0-9a-f-]{36}$/);
});

t.test('accept_protocol_versions refuses other versions with CONNACK 1 (MQTT 5: 0x84)', async (t) => {
  const b = await startTestBroker(
    t,
    'allow_anonymous true\nlistener 0 127.0.0.1\naccept_protocol_versions 4\nlistener 0 127.0.0.1\naccept_protocol_versions 5\n',
  );
  const [only4, only5] = b.broker.ports;
  t.equal(await connack(only4, { version: 3 }), 1, 'MQTT 3.1 refused');
  t.equal(await connack(only4, { version: 4 }), 0, 'MQTT 3.1.1 accepted');
  t.equal(await connack(only4, { version: 5 }), 0x84, 'MQTT 5 refused: 0x84 unsupported protocol version');
  t.equal(await connack(only5, { version: 5 }), 0, 'MQTT 5 accepted where 5 is listed');
  t.equal(await connack(only5, { version: 4 }), 1, 'MQTT 3.1.1 refused there');
  const c = loadConfig(conf('listener 1883\naccept_protocol_versions 3, 4, 5\n'));
  t.strictSame(c.listeners[0].acceptProtocolVersions, [3, 4, 5]);
  t.strictSame(c.warnings, [], 'no warning: MQTT 5 is spoken');
  t.throws(
    () => loadConfig(conf('listener 1883\naccept_protocol_versions 4 6\n')),
    /:2: accept_protocol_versions: expected 3, 4 or 5, got "6"/,
  );
});

t.test('max_topic_alias_broker: accepted, validated, and warned about (MQTT 5 only)', async (t) => {
  const c = loadConfig(conf('listener 1883\nmax_topic_alias_broker 20\n'));
  t.match(c.warnings, [{ line: 2, key: 'max_topic_alias_broker', message: /no topic aliases towards clients/ }]);
  t.throws(
    () => loadConfig(conf('listener 1883\nmax_topic_alias_broker 70000\n')),
    /max_topic_alias_broker: expected an integer in 0\.\.65535/,
  );
});

t.test('global_max_connections closes connections beyond the limit, across listeners', async (t) => {
  const b = await startTestBroker(t, 'allow_anonymous true\nglobal_max_connections 2\nlistener 0 127.0.0.1\nlistener 0 127.0.0.1\n');
  const [p1, p2] = b.broker.ports;
  const a = await mqtt.connectAsync(`mqtt://127.0.0.1:${p1}`, { clientId: 'a', reconnectPeriod: 0 });
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${p2}`, { clientId: 'b', reconnectPeriod: 0 });
  t.equal(await connack(p2, { clientId: 'third' }), -1, 'the third connection is closed without CONNACK');
  await a.endAsync();
  await new Promise((r) => setTimeout(r, 200));
  t.equal(await connack(p1, { clientId: 'fourth' }), 0, 'a slot freed by a disconnect is usable again');
  await c.endAsync();
});

t.test('global_max_clients refuses CONNECTs beyond the limit (CONNACK 3)', async (t) => {
  const b = await startTestBroker(t, 'allow_anonymous true\nglobal_max_clients 1\nlistener 0 127.0.0.1\n');
  const a = await mqtt.connectAsync(b.mqttUrl, { clientId: 'a', reconnectPeriod: 0 });
  t.equal(await connack(b.port, { clientId: 'second' }), 3);
  await a.endAsync();
});

t.test('websockets_origin: only the listed origins may upgrade', async (t) => {
  const b = await startTestBroker(
    t,
    'allow_anonymous true\nlistener 0 127.0.0.1\nprotocol websockets\nwebsockets_origin https://app.example.com\n',
  );
  const status = (origin?: string) =>
    new Promise<number>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${b.port}/`, 'mqtt', origin ? { origin } : {});
      ws.on('open', () => {
        ws.close();
        resolve(101);
      });
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('error', () => undefined);
    });
  t.equal(await status('https://app.example.com'), 101, 'listed origin upgrades');
  t.equal(await status('https://evil.example.net'), 403, 'other origin refused');
  t.equal(await status(undefined), 403, 'no origin refused');
});

t.test('--test-config: "Configuration file is OK." and 0, or the error and 3 (as Mosquitto 2.1)', async (t) => {
  const dir = tempDir();
  writeFileSync(join(dir, 'ok.conf'), 'listener 1883\nallow_anonymous true\nlog_dest stdout\nqueue_qos0_messages true\n');
  writeFileSync(join(dir, 'bad.conf'), 'listener 1883\nallow_anonymous maybe\n');
  const ok = spawnCli(t, ['--test-config', '-c', join(dir, 'ok.conf')]);
  t.equal(await ok.exited, 0);
  t.match(ok.output(), /^\d+: Configuration file is OK\.$/m);
  t.match(
    ok.output(),
    /ok\.conf:4: queue_qos0_messages: Mosquitto option not implemented by mqprobe; ignored/,
    'still-unimplemented keys keep their file:line warning',
  );
  const bad = spawnCli(t, ['--test-config', '-c', join(dir, 'bad.conf')]);
  t.equal(await bad.exited, 3);
  t.match(bad.output(), /bad\.conf:2: allow_anonymous: expected true or false, got "maybe"/);
  const none = spawnCli(t, ['--test-config']);
  t.equal(await none.exited, 3);
  t.match(none.output(), /Please provide a configuration file to test\./);
});
