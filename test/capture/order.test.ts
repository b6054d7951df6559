import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import mqttPacket from 'mqtt-packet';
import { startTestBroker, tempDir } from '../helpers/broker.js';
import { until } from '../helpers/mqtt.js';
import { connectPacket, rawSession, readEvents } from './session.js';

t.test('mosquitto_pub (CONNECT, then PUBLISH on CONNACK) is captured connected before it published, with persistence on', async (t) => {
  const dir = tempDir();
  const out = join(dir, 'events.ndjson');
  const b = await startTestBroker(
    t,
    `listener 0 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location ${dir}\ncapture_sink file ${out}\n`,
    { dir },
  );
  for (let i = 0; i < 5; i++)
    await promisify(execFile)('mosquitto_pub', [
      '-h',
      '127.0.0.1',
      '-p',
      String(b.port),
      '-i',
      `pub-${i}`,
      '-t',
      'demo/hello',
      '-m',
      'world',
    ]);
  // the file sink creates the file with its first write, which a loaded machine may not have made yet
  await until(
    () => existsSync(out) && readEvents(out).filter((e) => e.event.action === 'client-disconnected').length === 5,
    5000,
    'five sessions captured',
  );
  const events = readEvents(out);
  for (let i = 0; i < 5; i++) {
    const mine = events.filter((e) => e.mqtt?.client_id === `pub-${i}`).map((e) => e.event.action);
    t.same(
      mine.filter((a) => a !== 'connection-opened'),
      ['client-connected', 'publish-received', 'client-disconnected'],
      `pub-${i}: connect, publish, disconnect in order`,
    );
  }
});

t.test('a client that sends CONNECT and PUBLISH in one write is captured connected before it published', async (t) => {
  const dir = tempDir();
  const out = join(dir, 'events.ndjson');
  const b = await startTestBroker(t, `listener 0 127.0.0.1\nallow_anonymous true\ncapture_sink file ${out}\n`, { dir });
  const publish = mqttPacket.generate({
    cmd: 'publish',
    topic: 'burst/x',
    payload: Buffer.from('1'),
    qos: 0,
    retain: false,
    dup: false,
  } as mqttPacket.IPublishPacket);
  const disconnect = mqttPacket.generate({ cmd: 'disconnect' } as mqttPacket.IDisconnectPacket);
  for (let i = 0; i < 5; i++) await rawSession(b.port, [Buffer.concat([connectPacket(`burst-${i}`), publish, disconnect])]);
  // the file sink creates the file with its first write, which a loaded machine may not have made yet
  await until(
    () => existsSync(out) && readEvents(out).filter((e) => e.event.action === 'client-disconnected').length === 5,
    5000,
    'five sessions captured',
  );
  const events = readEvents(out);
  for (let i = 0; i < 5; i++) {
    const mine = events.filter((e) => e.mqtt?.client_id === `burst-${i}`).map((e) => e.event.action);
    t.same(
      mine.filter((a) => a !== 'connection-opened'),
      ['client-connected', 'publish-received', 'client-disconnected'],
      `burst-${i}: connect, publish, disconnect in order`,
    );
  }
});
