import t, { type Test } from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { freePort, spawnCli, startTestBroker, tempDir, waitForPort } from '../helpers/broker.js';
import { startRedis } from '../helpers/redis.js';

const IN_PROCESS_RUNS = 44;
const PROCESS_RUNS = 6;

/** Capture file actions, in order. */
function actions(file: string): string[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { event: { action: string } }).event.action);
}

/**
 * Clients that keep connecting, subscribing, publishing QoS 1 and leaving (cleanly, abruptly, with
 * wills, persistent or not, half-way through CONNECT) until stop() — the mix that used to make a
 * Redis command run on an already closed connection during shutdown.
 */
function churn(port: number, seed: number) {
  let running = true;
  const open = new Set<mqtt.MqttClient | net.Socket>();
  const one = async (i: number) => {
    const kind = (seed + i) % 4;
    if (kind === 3) {
      // a raw CONNECT with a will, cut off before or right after the CONNACK
      const s = net.connect(port, '127.0.0.1');
      open.add(s);
      s.on('error', () => undefined);
      s.write(
        mqttPacket.generate({
          cmd: 'connect',
          protocolId: 'MQTT',
          protocolVersion: 4,
          clean: false,
          clientId: `raw-${seed}-${i}`,
          keepalive: 30,
          will: { topic: 'w/raw', payload: Buffer.from('x'), qos: 1, retain: false },
        } as mqttPacket.IConnectPacket),
      );
      await new Promise((r) => setTimeout(r, i % 20));
      s.destroy();
      open.delete(s);
      return;
    }
    const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
      clientId: `churn-${seed}-${i % 6}`,
      clean: kind !== 1,
      reconnectPeriod: 0,
      connectTimeout: 2000,
      will: kind === 2 ? { topic: 'w/gone', payload: Buffer.from('gone'), qos: 1, retain: true } : undefined,
    });
    open.add(c);
    c.on('error', () => undefined);
    c.on('connect', () => {
      c.subscribe(`churn/${i % 5}/#`, { qos: 1 });
      for (let k = 0; k < 5; k++) c.publish(`churn/${k}/x`, `m${k}`, { qos: 1, retain: k === 0 });
      setTimeout(() => c.end(kind === 2), i % 30);
    });
    await new Promise<void>((r) => c.once('close', () => r()));
    open.delete(c);
  };
  const loops = Array.from({ length: 4 }, async (_, w) => {
    for (let i = w; running; i += 4) await one(i);
  });
  return {
    async stop() {
      running = false;
      for (const c of open) {
        if (c instanceof net.Socket) c.destroy();
        else c.end(true);
      }
      await Promise.all(loops);
    },
  };
}

t.test(
  `SIGTERM-equivalent close() with Redis state while clients come and go: clean ${IN_PROCESS_RUNS} times (in-process brokers)`,
  async (t) => {
    const redis = await startRedis(t);
    const failures: string[] = [];
    const onFailure = (err: unknown) => failures.push(String((err as Error)?.stack ?? err));
    process.on('uncaughtException', onFailure);
    process.on('unhandledRejection', onFailure);
    t.teardown(() => {
      process.off('uncaughtException', onFailure);
      process.off('unhandledRejection', onFailure);
    });
    let clean = 0;
    for (let run = 0; run < IN_PROCESS_RUNS; run++) {
      const dir = tempDir();
      const out = join(dir, 'capture.ndjson');
      const b = await startTestBroker(
        t,
        `listener 0 127.0.0.1\nallow_anonymous true\npersistence_redis_url ${redis.url}\ncapture_sink file ${out}\n`,
        { dir },
      );
      const clients = churn(b.port, run);
      await new Promise((r) => setTimeout(r, 30 + ((run * 37) % 250)));
      const before = failures.length;
      await b.broker.close();
      await clients.stop();
      await new Promise((r) => setTimeout(r, 50)); // late callbacks of the closed connections
      const last = actions(out).at(-1);
      if (failures.length === before && last === 'broker-stopped') clean++;
      else t.comment(`run ${run}: last capture event ${last}; ${failures.slice(before).join('\n')}`);
    }
    t.equal(clean, IN_PROCESS_RUNS, `every shutdown was clean (${clean}/${IN_PROCESS_RUNS}): no uncaught error, broker-stopped last`);
    t.same(failures, [], 'no uncaught exception or unhandled rejection');
  },
);

async function processRun(t: Test, redisUrl: string, run: number): Promise<{ code: number | null; last?: string; output: string }> {
  const dir = tempDir();
  const port = await freePort();
  const out = join(dir, 'capture.ndjson');
  const conf = join(dir, 'mqprobe.conf');
  writeFileSync(
    conf,
    // the capture file is in a root-only temp folder: stay root (mqprobe drops to user mosquitto by default)
    `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence_redis_url ${redisUrl}\ncapture_sink file ${out}\nlog_dest stdout\nuser root\n`,
  );
  const p = spawnCli(t, ['-c', conf]);
  await waitForPort(port);
  const clients = churn(port, run);
  await new Promise((r) => setTimeout(r, 200 + run * 60));
  p.child.kill('SIGTERM');
  const code = await p.exited;
  await clients.stop();
  return { code, last: actions(out).at(-1), output: p.output() };
}

t.test(
  `SIGTERM to the real CLI with Redis state while clients come and go: exit 0 and broker-stopped last, ${PROCESS_RUNS} processes, three at a time`,
  async (t) => {
    const redis = await startRedis(t);
    const runs = [];
    // three at a time: each CLI compiles its TypeScript on start
    for (let i = 0; i < PROCESS_RUNS; i += 3) runs.push(...(await Promise.all([i, i + 1, i + 2].map((k) => processRun(t, redis.url, k)))));
    runs.forEach((r, i) => {
      if (r.code !== 0 || r.last !== 'broker-stopped') t.comment(`process ${i}: exit ${r.code}, last ${r.last}\n${r.output.slice(-3000)}`);
    });
    t.same(
      runs.map((r) => r.code),
      Array(PROCESS_RUNS).fill(0),
      'every process exited 0',
    );
    t.same(
      runs.map((r) => r.last),
      Array(PROCESS_RUNS).fill('broker-stopped'),
      'broker-stopped is the last capture line of every process',
    );
    t.same(runs.filter((r) => /Connection is closed|uncaught|Unhandled/i.test(r.output)).length, 0, 'no Redis error escaped');
  },
);
