import t, { type Test } from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { freePort, spawnCli, tempDir, waitForPort, type BrokerProcess } from '../../helpers/broker.js';
import { startMosquitto, type MosquittoPeer } from '../../helpers/mosquitto.js';
import { collect, connectClient, until } from '../../helpers/mqtt.js';

// SIGHUP to the real CLI re-reads the `connection` blocks (bridge_reload_type, Mosquitto 2.1); the remote is a
// real Mosquitto 2.0.11 on loopback. One mqprobe process and one remote for the whole file, steps in order.

const block = (name: string, remote: number, line: string, extra = '') =>
  `connection ${name}\naddress 127.0.0.1:${remote}\nremote_clientid ${name}-br\nrestart_timeout 1\n${line}\n${extra}`;

/** How many times the CLI has logged the bridge as connected. */
const connects = (cli: BrokerProcess, name: string) =>
  cli
    .output()
    .split('\n')
    .filter((l) => l.includes(`Connecting bridge ${name} (`) && l.includes('): connected')).length;

async function remoteCollector(t: Test, remote: MosquittoPeer): Promise<{ client: MqttClient; got: ReturnType<typeof collect> }> {
  const client = await connectClient(t, remote.url);
  const got = collect(client);
  await client.subscribeAsync(['old/#', 'new/#', '$SYS/broker/connection/+/state'], { qos: 1 });
  return { client, got };
}

t.test('SIGHUP reloads connection blocks: add, remove, immediate, lazy, a broken file', async (t) => {
  const remote = await startMosquitto(t);
  const dir = tempDir();
  const file = join(dir, 'mqprobe.conf');
  const port = await freePort();
  const httpPort = await freePort();
  const head = `listener ${port} 127.0.0.1\nallow_anonymous true\nhttp_listener ${httpPort} 127.0.0.1\n`;
  const metrics = async () => (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const sent = async (name: string) =>
    Number(new RegExp(`mqprobe_bridge_messages_out_total\\{connection="${name}"\\} (\\d+)`).exec(await metrics())?.[1]);
  const write = (blocks: string[]) => writeFileSync(file, head + blocks.join('\n'));
  write([
    block('imm', remote.port, 'topic imm/# out 1 "" old/', 'bridge_reload_type immediate\n'),
    block('lz', remote.port, 'topic lz/# out 1 "" old/', 'bridge_reload_type lazy\n'),
    block('gone', remote.port, 'topic gone/# out 1 "" old/'),
  ]);
  const cli = spawnCli(t, ['-c', file]);
  await waitForPort(port);
  await until(() => ['imm', 'lz', 'gone'].every((n) => connects(cli, n) === 1), 15_000, 'three bridges connected');
  let { got } = await remoteCollector(t, remote);
  const local = await connectClient(t, `mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
  const has = (topic: string) => got.some((m) => m.topic === topic);
  const send = async (...topics: string[]) => Promise.all(topics.map((topic) => local.publishAsync(topic, 'x', { qos: 1 })));

  await send('imm/1', 'lz/1', 'gone/1');
  await until(() => has('old/imm/1') && has('old/lz/1') && has('old/gone/1'), 10_000, 'the first mappings');

  // imm and lz get a new remote prefix; gone is removed; added is new
  write([
    block('imm', remote.port, 'topic imm/# out 1 "" new/\ntopic more/# out 1 "" new/', 'bridge_reload_type immediate\n'),
    block('lz', remote.port, 'topic lz/# out 1 "" new/'),
    block('added', remote.port, 'topic add/# out 1 "" new/'),
  ]);
  cli.child.kill('SIGHUP');
  await until(() => connects(cli, 'imm') === 2 && connects(cli, 'added') === 1, 15_000, 'imm reconnected and added connected');
  await until(
    () => got.some((m) => m.topic === '$SYS/broker/connection/gone-br/state' && m.payload.toString() === '0'),
    10_000,
    'the removed bridge tells the remote it is down',
  );
  await until(() => cli.output().includes('bridge gone: stopped, its local session ended'), 10_000, 'the removed bridge stopped');
  let resumed: boolean | undefined;
  const ghost = { clientId: 'local.gone-br', clean: false };
  await connectClient(t, `mqtt://127.0.0.1:${port}`, ghost, (c) => c.once('connect', (ack) => (resumed = ack.sessionPresent)));
  t.equal(resumed, false, "the removed bridge's local session is gone (nothing queues for it)");
  await send('imm/2', 'more/2', 'lz/2', 'add/2', 'gone/2');
  await until(
    () => has('new/imm/2') && has('new/more/2') && has('old/lz/2') && has('new/add/2'),
    10_000,
    'immediate: new mapping; lazy: old one',
  );
  t.notOk(has('old/imm/2'), 'immediate: the old mapping is gone at once');
  t.notOk(has('new/lz/2'), 'lazy: the new mapping waits for the next reconnection');
  t.equal(connects(cli, 'lz'), 1, 'lazy: the connection was kept');
  t.notOk(has('old/gone/2'), 'the removed bridge forwards nothing');
  // the remote acknowledges after delivering: poll /metrics a while for the last acknowledgement
  for (let i = 0; (await sent('imm')) !== 3 && i < 200; i++) await new Promise((r) => setTimeout(r, 50));
  t.equal(await sent('imm'), 3, "imm/1, imm/2, more/2: the replacement's counter goes on from the old bridge's");
  t.notMatch(await metrics(), /connection="gone"/, 'the removed bridge leaves no series in /metrics');

  // the remote drops every connection: lz reconnects with its new settings
  await remote.stop();
  await remote.start();
  ({ got } = await remoteCollector(t, remote));
  await until(() => connects(cli, 'lz') === 2 && connects(cli, 'imm') === 3, 15_000, 'bridges reconnected');
  await send('lz/3', 'imm/3');
  await until(() => has('new/lz/3') && has('new/imm/3'), 10_000, 'lazy: the new mapping after the reconnection');
  t.notOk(has('old/lz/3'), 'lazy: the old mapping is gone after the reconnection');

  // a broken file: one error line, every bridge keeps running as it was
  write([block('imm', remote.port, 'topic imm/# sideways 1 "" broken/'), 'connection nohost\ntopic #\n']);
  cli.child.kill('SIGHUP');
  await until(() => cli.output().includes('reload failed; keeping the previous bridges'), 10_000, 'the reload error');
  t.match(cli.output(), /expected a direction/, 'the error names the bad line');
  await send('imm/4', 'lz/4', 'add/4');
  await until(() => has('new/imm/4') && has('new/lz/4') && has('new/add/4'), 10_000, 'the bridges still forward');
  t.equal(connects(cli, 'imm'), 3, 'no reconnection for a broken file');

  // a TLS file that cannot be read: nothing changes either (not even the bridges before it in the file)
  const failures = () => cli.output().split('reload failed; keeping the previous bridges').length - 1;
  write([block('imm', remote.port, 'topic imm/# out 1 "" tls/', `bridge_cafile ${join(dir, 'missing-ca.crt')}\n`)]);
  cli.child.kill('SIGHUP');
  await until(() => failures() === 2, 10_000, 'the second reload error');
  t.match(cli.output(), /connection imm: bridge_cafile .*missing-ca\.crt: ENOENT/);
  await send('imm/5', 'add/5');
  await until(() => has('new/imm/5') && has('new/add/5'), 10_000, 'the bridges still forward as before');

  cli.child.kill('SIGTERM');
  t.equal(await cli.exited, 0, 'clean exit after the reloads');
});
