import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import t from 'tap';
import net from 'node:net';
import mqemitter from 'mqemitter';
import mqttPacket from 'mqtt-packet';
import { makeReentrancySafe } from '../../broker/engine/safe-emitter.js';
import { startTestBroker, ANONYMOUS_CONF, type TestBroker } from '../helpers/broker.js';
import { connectClient, collect, until } from '../helpers/mqtt.js';

type Emitter = {
  on(topic: string, f: (m: unknown, cb: () => void) => void): void;
  emit(m: { topic: string }, cb?: (err?: Error) => void): void;
};

/** Holds the emitter's only slot with a slow listener, queues a backlog nobody listens to, then releases. */
function drainBacklog(emitter: Emitter, backlog: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let release: () => void = () => undefined;
    emitter.on('slow', (_m, cb) => (release = cb));
    emitter.emit({ topic: 'slow' });
    let done = 0;
    for (let i = 0; i < backlog; i++) emitter.emit({ topic: 'nobody/listens' }, () => done++);
    try {
      release();
      resolve(done);
    } catch (err) {
      reject(err);
    }
  });
}

/** A full garbage collection without --expose-gc on the command line (tap starts the process). */
function collectGarbage(): void {
  v8.setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

t.test('root cause: mqemitter drains a synchronous backlog by recursion (unpatched it overflows the stack)', async (t) => {
  await t.rejects(
    drainBacklog(mqemitter({ concurrency: 1 }) as Emitter, 100_000),
    RangeError,
    'mqemitter 7.1.0 as shipped: Maximum call stack size exceeded',
  );
  t.equal(
    await drainBacklog(makeReentrancySafe(mqemitter({ concurrency: 1 })) as Emitter, 100_000),
    100_000,
    'patched: every queued message completes, in a loop',
  );
});

t.test('the patched emitter keeps delivery order', async (t) => {
  const e = makeReentrancySafe(mqemitter({ concurrency: 1 })) as Emitter;
  const seen: number[] = [];
  e.on('x', (m, cb) => {
    seen.push((m as { n: number }).n);
    cb();
  });
  for (let n = 0; n < 1000; n++) e.emit({ topic: 'x', n } as { topic: string });
  await until(() => seen.length === 1000);
  t.same(
    seen,
    Array.from({ length: 1000 }, (_, i) => i),
  );
});

function rawClient(port: number, id: string): net.Socket {
  const s = net.connect(port, '127.0.0.1');
  s.write(
    mqttPacket.generate({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clean: true,
      clientId: id,
      keepalive: 60,
    } as mqttPacket.IConnectPacket),
  );
  s.on('data', () => undefined);
  s.on('error', () => undefined);
  return s;
}

t.test('QoS 0 flood while the only subscriber disconnects: the broker survives, 20 times in a row', async (t) => {
  const { port, mqttUrl } = await startTestBroker(t);
  const pkt = mqttPacket.generate({
    cmd: 'publish',
    topic: 'bench/x',
    payload: Buffer.alloc(64),
    qos: 0,
    retain: false,
    dup: false,
  } as mqttPacket.IPublishPacket);
  const batch = Buffer.concat(Array(200).fill(pkt));
  for (let round = 1; round <= 20; round++) {
    const sub = rawClient(port, `sub-${round}`);
    sub.write(
      mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'bench/#', qos: 0 }] } as mqttPacket.ISubscribePacket),
    );
    await new Promise((r) => setTimeout(r, 100));
    const pubs = [1, 2, 3, 4].map((i) => rawClient(port, `pub-${round}-${i}`));
    let stop = false;
    for (const p of pubs) {
      // 10,000 messages each: tens of thousands queue in the emitter, as in the crashes we saw,
      // without leaving megabytes in socket buffers for the broker to chew through afterwards
      let batches = 50;
      const pump = () => {
        while (!stop && batches-- > 0 && p.write(batch));
        if (!stop && batches > 0) p.once('drain', pump);
      };
      setTimeout(pump, 20);
    }
    // short floods: the backlog that overflowed the stack builds up within tens of milliseconds,
    // and the rounds must not starve test files running beside this one
    await new Promise((r) => setTimeout(r, 60));
    sub.destroy();
    await new Promise((r) => setTimeout(r, 60));
    stop = true;
    for (const p of pubs) p.destroy();
  }
  const probe = await connectClient(t, mqttUrl);
  const got = collect(probe);
  await probe.subscribeAsync('alive');
  await probe.publishAsync('alive', 'yes', { qos: 1 });
  await until(() => got.length === 1, 10_000, 'the broker still delivers');
  t.pass('survived 20 flood-and-disconnect rounds');
});

t.test('a subscriber that stops reading does not stall the others', async (t) => {
  const { port, mqttUrl } = await startTestBroker(t, ANONYMOUS_CONF);
  const stalled = rawClient(port, 'stalled');
  stalled.write(
    mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'fan/#', qos: 0 }] } as mqttPacket.ISubscribePacket),
  );
  await new Promise((r) => setTimeout(r, 200));
  stalled.pause(); // stops reading: its socket buffers fill up
  const healthy = await connectClient(t, mqttUrl, { clientId: 'healthy' });
  let received = 0;
  healthy.on('message', () => received++);
  await healthy.subscribeAsync('fan/#');
  const pub = await connectClient(t, mqttUrl, { clientId: 'publisher' });
  const payload = Buffer.alloc(16 * 1024);
  for (let i = 0; i < 2000; i++) pub.publish('fan/x', payload, { qos: 0 });
  await until(() => received === 2000, 30_000, 'the healthy subscriber gets all 2000 messages');
  t.equal(received, 2000);
  stalled.destroy();
});

t.test('QoS 0 messages for a subscriber over max_queued_bytes are dropped and counted', async (t) => {
  const { port, mqttUrl, httpPort } = await startTestBroker(t, `${ANONYMOUS_CONF}max_queued_bytes 65536\nhttp_listener 0 127.0.0.1\n`);
  const stalled = rawClient(port, 'stalled');
  stalled.write(
    mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'fan/#', qos: 0 }] } as mqttPacket.ISubscribePacket),
  );
  await new Promise((r) => setTimeout(r, 200));
  stalled.pause();
  const pub = await connectClient(t, mqttUrl, { clientId: 'publisher' });
  const payload = Buffer.alloc(16 * 1024);
  for (let i = 0; i < 500; i++) await pub.publishAsync('fan/x', payload, { qos: 1 });
  const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const drops = Number(/^mqprobe_queue_full_drops_total\{qos="0"\} (\d+)/m.exec(metrics)?.[1]);
  t.ok(drops > 0 && drops < 500, `some messages were dropped for the stalled reader (${drops} of 500), the first ones were sent`);
  stalled.destroy();
});

t.test('10,000 connections opened and dropped in a burst leave the broker healthy', async (t) => {
  const { port, mqttUrl, broker } = await startTestBroker(t);
  collectGarbage();
  const before = process.memoryUsage().heapUsed;
  const connect = mqttPacket.generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: true,
    clientId: '',
    keepalive: 60,
  } as mqttPacket.IConnectPacket);
  let opened = 0;
  for (let wave = 0; wave < 10; wave++) {
    const socks = await Promise.all(
      Array.from(
        { length: 1000 },
        () =>
          new Promise<net.Socket>((resolve) => {
            const s = net.connect(port, '127.0.0.1', () => {
              s.write(connect);
              resolve(s);
            });
            s.on('error', () => resolve(s));
            s.on('data', () => undefined);
          }),
      ),
    );
    opened += socks.length;
    for (const s of socks) s.destroy();
  }
  t.equal(opened, 10_000);
  await until(() => broker.aedes.connectedClients === 0, 20_000, 'all clients gone');
  const c = await connectClient(t, mqttUrl);
  const got = collect(c);
  await c.subscribeAsync('after/burst');
  await c.publishAsync('after/burst', 'ok', { qos: 1 });
  await until(() => got.length === 1);
  collectGarbage();
  // heap, not rss: V8 keeps freed pages mapped, so rss stays high after any burst
  await new Promise((r) => setTimeout(r, 500));
  const grown = process.memoryUsage().heapUsed - before;
  t.comment(`heap grew by ${(grown / 1048576).toFixed(1)} MiB over the burst`);
  t.ok(grown < 100 * 1048576, 'the heap did not keep the 10,000 connections (a leak would hold ~300 MiB)');
});

t.test('QoS 1 messages beyond max_inflight_messages + max_queued_messages unacknowledged are dropped and counted', async (t) => {
  const { port, mqttUrl, httpPort } = await startTestBroker(
    t,
    `${ANONYMOUS_CONF}max_inflight_messages 5\nmax_queued_messages 10\nhttp_listener 0 127.0.0.1\n`,
  );
  // reads everything but never sends PUBACK
  const parser = mqttPacket.parser();
  let publishes = 0;
  parser.on('packet', (p) => {
    if (p.cmd === 'publish') publishes++;
  });
  const silent = net.connect(port, '127.0.0.1');
  silent.on('data', (d) => parser.parse(d));
  silent.write(
    mqttPacket.generate({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clean: true,
      clientId: 'never-acks',
      keepalive: 60,
    } as mqttPacket.IConnectPacket),
  );
  silent.write(
    mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'q/#', qos: 1 }] } as mqttPacket.ISubscribePacket),
  );
  t.teardown(() => silent.destroy());
  await new Promise((r) => setTimeout(r, 200));
  const healthy = await connectClient(t, mqttUrl, { clientId: 'acks' });
  let healthyGot = 0;
  healthy.on('message', () => healthyGot++);
  await healthy.subscribeAsync('q/#', { qos: 1 });
  const pub = await connectClient(t, mqttUrl, { clientId: 'publisher' });
  // paced by the acknowledging subscriber, so only the silent one can fill its queue
  for (let i = 0; i < 50; i++) {
    await pub.publishAsync('q/x', `m${i}`, { qos: 1 });
    await until(() => healthyGot === i + 1, 5000, `delivery ${i + 1} to the acknowledging subscriber`);
  }
  t.equal(publishes, 15, 'the silent subscriber got 5 in flight + 10 queued');
  const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  t.equal(Number(/^mqprobe_queue_full_drops_total\{qos="1"\} (\d+)/m.exec(metrics)?.[1]), 35, 'the other 35 were counted as dropped');
});

/** The broker's end of a client's connection, for what it holds unsent. */
const brokerConn = (b: TestBroker, id: string) =>
  (b.broker.aedes as unknown as { clients: Record<string, { conn: { writableLength: number } }> }).clients[id].conn;

async function stalledSubscriber(port: number, id: string): Promise<net.Socket> {
  const s = rawClient(port, id);
  s.write(
    mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'fan/#', qos: 0 }] } as mqttPacket.ISubscribePacket),
  );
  await new Promise((r) => setTimeout(r, 200));
  s.pause();
  return s;
}

t.test('QoS 0 to a subscriber that stops reading: by default at most 8 MiB held for it (64 MiB before)', async (t) => {
  const b = await startTestBroker(t, ANONYMOUS_CONF);
  const stalled = await stalledSubscriber(b.port, 'stalled');
  const pub = await connectClient(t, b.mqttUrl, { clientId: 'publisher' });
  const payload = Buffer.alloc(16 * 1024);
  let peak = 0;
  for (let i = 0; i < 2000; i++) {
    await pub.publishAsync('fan/x', payload, { qos: 1 });
    peak = Math.max(peak, brokerConn(b, 'stalled').writableLength);
  }
  t.ok(peak <= 8 * 1024 * 1024 + 64 * 1024, `peak ${(peak / 1024).toFixed(0)} KiB unsent`);
  t.ok(peak >= 4 * 1024 * 1024, `and it did fill up (peak ${(peak / 1024).toFixed(0)} KiB)`);
  stalled.destroy();
});

t.test('global_max_queued_bytes: two stalled subscribers share the budget; a reading one gets every message', async (t) => {
  const b = await startTestBroker(t, `${ANONYMOUS_CONF}max_queued_messages 0\nglobal_max_queued_bytes 1048576\n`);
  const s1 = await stalledSubscriber(b.port, 'stalled-1');
  const s2 = await stalledSubscriber(b.port, 'stalled-2');
  const reader = await connectClient(t, b.mqttUrl, { clientId: 'reader' });
  let received = 0;
  reader.on('message', () => received++);
  await reader.subscribeAsync('fan/#');
  const pub = await connectClient(t, b.mqttUrl, { clientId: 'publisher' });
  const payload = Buffer.alloc(16 * 1024);
  let peak = 0;
  for (let i = 0; i < 1000; i++) {
    await pub.publishAsync('fan/x', payload, { qos: 1 });
    peak = Math.max(peak, brokerConn(b, 'stalled-1').writableLength + brokerConn(b, 'stalled-2').writableLength);
  }
  await until(() => received === 1000, 30_000, 'the reading subscriber gets all 1000');
  t.equal(received, 1000);
  t.ok(peak <= 1.25 * 1048576, `the stalled two hold at most about the budget (peak ${(peak / 1024).toFixed(0)} KiB)`);
  s1.destroy();
  s2.destroy();
});

/** A connection as the broker holds it: `writableBuffer` is Node's list of what waits to be written. */
interface BrokerEnd {
  writableLength: number;
  writableBuffer: unknown[];
  listenerCount(event: string): number;
}

t.test('a subscriber that stops reading pins no callback per QoS 0 message, and its unsent bytes are a few buffers', async (t) => {
  const b = await startTestBroker(t, ANONYMOUS_CONF);
  const stalled = await stalledSubscriber(b.port, 'stalled');
  t.teardown(() => stalled.destroy());
  const flooder = rawClient(b.port, 'flooder');
  t.teardown(() => flooder.destroy());
  const packet = mqttPacket.generate({
    cmd: 'publish',
    topic: 'fan/x',
    payload: Buffer.alloc(1000, 'f'),
    qos: 0,
    retain: false,
    dup: false,
  });
  const batch = Buffer.concat(Array(100).fill(packet));
  const conn = () =>
    (b.broker.aedes as unknown as { clients: Record<string, { conn: BrokerEnd; _pendingDrains: unknown[] }> }).clients['stalled'];
  // past what the kernel's socket buffers take, so that the broker holds unsent bytes and its writes return false
  let sent = 0;
  await until(
    () => {
      if (flooder.writableLength < 1024 * 1024) for (let i = 0; i < 10; i++, sent += 100) flooder.write(batch);
      return conn().conn.writableLength > 2 * 1024 * 1024;
    },
    60_000,
    'the stalled subscriber holds 2 MiB unsent',
  );
  const c = conn();
  const held = c.conn.writableLength;
  const messages = Math.round(held / packet.length);
  t.ok(
    c._pendingDrains.length + c.conn.listenerCount('drain') < 10,
    `drain waiters: ${c._pendingDrains.length} (about ${messages} messages held)`,
  );
  t.ok(
    c.conn.writableBuffer.length < messages / 2,
    `${c.conn.writableBuffer.length} buffers hold the ${messages} unsent messages (${sent} sent; corked, 5 pieces each)`,
  );
});
