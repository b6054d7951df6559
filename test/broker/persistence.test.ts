import t, { type Test } from 'tap';
import { readdirSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, spawnCli, tempDir, waitForPort, type Teardown } from '../helpers/broker.js';
import { connectClient, connectCollecting, collect, until } from '../helpers/mqtt.js';

async function startCli(t: Teardown, dir: string, port: number) {
  const conf = join(dir, 'mqprobe.conf');
  writeFileSync(
    conf,
    `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location ${dir}\nautosave_interval 1\nlog_dest stdout\n# the state folder is a root-only temp folder: stay root (mqprobe drops to user mosquitto by default, as Mosquitto)\nuser root\n`,
  );
  const p = spawnCli(t, ['-c', conf]);
  await waitForPort(port);
  return p;
}

/** Leaves state behind: a retained message and a persistent session with 5 queued QoS 1 messages. */
async function makeState(t: Teardown, url: string): Promise<void> {
  const sleeper = await connectClient(t, url, { clientId: 'sleeper', clean: false });
  await sleeper.subscribeAsync('queue/#', { qos: 1 });
  await sleeper.endAsync();
  const pub = await connectClient(t, url, { clientId: 'publisher' });
  await pub.publishAsync('retained/1', 'kept', { qos: 1, retain: true });
  for (let i = 0; i < 5; i++) await pub.publishAsync('queue/x', `m${i}`, { qos: 1 });
  await pub.endAsync();
}

async function checkState(t: Test, url: string): Promise<void> {
  const { got: queued } = await connectCollecting(t, url, { clientId: 'sleeper', clean: false });
  await until(() => queued.length === 5, 10_000, 'the 5 queued messages');
  t.same(
    queued.map((m) => m.payload.toString()),
    ['m0', 'm1', 'm2', 'm3', 'm4'],
    'queued QoS 1 messages delivered in order after restart',
  );
  const reader = await connectClient(t, url, { clientId: 'reader' });
  const retained = collect(reader);
  await reader.subscribeAsync('retained/#');
  await until(() => retained.length === 1, 5000, 'the retained message');
  t.equal(retained[0].payload.toString(), 'kept');
}

for (const how of ['SIGTERM', 'SIGKILL'] as const) {
  t.test(
    `retained messages, sessions and queued messages survive a restart (${how === 'SIGTERM' ? 'graceful' : 'kill -9 after one autosave interval'})`,
    async (t) => {
      const dir = tempDir();
      const port = await freePort();
      const first = await startCli(t, dir, port);
      const url = `mqtt://127.0.0.1:${port}`;
      await makeState(t, url);
      if (how === 'SIGKILL') await new Promise((r) => setTimeout(r, 2500)); // past autosave_interval 1
      first.child.kill(how);
      const code = await first.exited;
      if (how === 'SIGTERM') t.equal(code, 0, 'graceful shutdown exits 0');
      await startCli(t, dir, port);
      await checkState(t, url);
    },
  );
}

t.test('a corrupt snapshot is reported, kept aside, and the broker starts empty', async (t) => {
  const dir = tempDir();
  writeFileSync(join(dir, 'mqprobe.db'), '{"format":"mqprobe-snapshot","version":1,"retained":[{"topic"');
  const port = await freePort();
  const p = await startCli(t, dir, port);
  await until(() => /persistence file .* is unreadable/.test(p.output()), 5000, 'the error line');
  const aside = readdirSync(dir).filter((f) => f.startsWith('mqprobe.db.corrupt-'));
  t.equal(aside.length, 1, 'the bad file was moved aside');
  t.match(readFileSync(join(dir, aside[0]), 'utf8'), /^\{"format"/, 'and kept as it was');
  const c = await connectClient(t, `mqtt://127.0.0.1:${port}`);
  t.ok(c.connected, 'the broker serves clients');
});
