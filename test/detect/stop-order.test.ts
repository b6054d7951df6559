/** At shutdown, detection's alert-summary events come before broker-stopped, the last event of an instance. */
import t from 'tap';
import { join } from 'node:path';
import { startTestBroker, tempDir } from '../helpers/broker.js';
import mqtt from 'mqtt';
import { until } from '../helpers/mqtt.js';
import { fixture } from '../helpers/paths.js';
import { readEvents } from '../capture/session.js';

/** One CONNECT with a wrong password; resolves when the broker has refused it. */
async function guess(url: string, password: string): Promise<void> {
  const c = mqtt.connect(url, { clientId: 'guesser', username: 'alice', password, reconnectPeriod: 0, connectTimeout: 5000 });
  await new Promise<void>((resolve) => {
    c.once('error', () => resolve());
    c.once('close', () => resolve());
  });
  c.end(true);
}

t.test('a suppressed alert still held at shutdown is summarised before broker-stopped', async (t) => {
  const dir = tempDir();
  const out = join(dir, 'capture.ndjson');
  const b = await startTestBroker(t, `listener 0 127.0.0.1\npassword_file ${fixture('mosquitto', 'passwd')}\ncapture_sink file ${out}\n`, {
    dir,
  });
  // password guessing raises auth-brute-force; the guesses after it, within its suppression window, are held back
  for (let i = 0; i < 12; i++) await guess(b.mqttUrl, `guess-${i}`);
  await until(() => readEvents(out).some((e) => e.event.action === 'alert-raised'), 5000, 'the first alert');
  for (let i = 12; i < 22; i++) await guess(b.mqttUrl, `guess-${i}`);
  await b.broker.close();
  const actions = readEvents(out).map((e) => e.event.action);
  t.ok(actions.includes('alert-summary'), 'the held-back alerts are summarised at shutdown');
  t.equal(actions.at(-1), 'broker-stopped', 'broker-stopped is the last event');
  t.ok(actions.lastIndexOf('alert-summary') < actions.indexOf('broker-stopped'));
});
