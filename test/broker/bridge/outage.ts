import type { Test } from 'tap';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, spawnCli, tempDir, waitForPort } from '../../helpers/broker.js';
import { startMosquitto } from '../../helpers/mosquitto.js';
import { connectClient, connectCollecting, until } from '../../helpers/mqtt.js';

/**
 * mqprobe (the real CLI) bridges `q/#` to a real Mosquitto 2.0.11 that is down; `n` QoS 1 messages are
 * published locally, mqprobe is killed -9 once `saved` resolves (its state is where `stateLines` keep it),
 * restarted, the remote comes back: a persistent subscriber there must get every message, in order.
 */
export async function sigkillWhileRemoteDown(t: Test, stateLines: string, saved: () => Promise<void>, n = 1000): Promise<void> {
  const remoteDir = tempDir('mqprobe-bridge-remote-');
  chmodSync(remoteDir, 0o777);
  const remote = await startMosquitto(t, `allow_anonymous true\npersistence true\npersistence_location ${remoteDir}/\n`, {
    dir: remoteDir,
  });
  const sink = await connectClient(t, remote.url, { clientId: 'sink', clean: false });
  await sink.subscribeAsync('q/#', { qos: 1 });
  await sink.endAsync();
  await remote.stop('SIGTERM');

  const port = await freePort();
  const file = join(tempDir('mqprobe-bridge-state-'), 'mqprobe.conf');
  writeFileSync(
    file,
    `listener ${port} 127.0.0.1\nallow_anonymous true\nuser root\n${stateLines}` +
      `connection up\naddress 127.0.0.1:${remote.port}\nremote_clientid up\nrestart_timeout 1\ntopic q/# out 1\n`,
  );
  const first = spawnCli(t, ['-c', file]);
  await waitForPort(port);
  const pub = await connectClient(t, `mqtt://127.0.0.1:${port}`);
  for (let i = 0; i < n; i++) await pub.publishAsync('q/x', `m${i}`, { qos: 1 });
  await pub.endAsync();
  await saved();
  first.child.kill('SIGKILL');
  await first.exited;

  spawnCli(t, ['-c', file]);
  await waitForPort(port);
  await remote.start();
  const { got } = await connectCollecting(t, remote.url, { clientId: 'sink', clean: false });
  await until(() => got.length >= n, 40_000, `${n} messages at the remote`);
  await new Promise((r) => setTimeout(r, 300));
  const payloads = got.map((m) => m.payload.toString());
  t.same(
    [...new Set(payloads)],
    Array.from({ length: n }, (_, i) => `m${i}`),
    'every message, in order',
  );
  // the remote was down at the kill: nothing was in flight to it, so nothing is sent twice
  t.equal(payloads.length, n, 'each once');
}
