/**
 * The patches of the vendored engine (broker/engine/vendor/UPSTREAM.md), each proven on the wire
 * against the bare vendored Aedes on a loopback socket, with raw clients (wire.ts) so that every
 * reason code is read as the broker sent it. These are mqprobe's own tests, written fresh after
 * the ones Aedes 1.2.0 has for the same fixes (test/prototype-keys.js, test/qos2.js).
 */
import net from 'node:net';
import t, { type Test } from 'tap';
import mqemitterRedis from 'mqemitter-redis';
import mqemitter from 'mqemitter';
import { Aedes, type AedesOptions } from '../../broker/engine/vendor/aedes/aedes.js';
import MemoryPersistence from 'aedes-persistence/asyncPersistence.js';
import { startRedis } from '../helpers/redis.js';
import { Redis } from 'ioredis';
import persistenceRedis from 'aedes-persistence-redis';
import { withCleanIncoming, incomingIdsKey } from '../../broker/engine/persistence/redis-clean-incoming.js';
import { WireClient } from './wire.js';
import mqttPacket from 'mqtt-packet';
import { duplexPair } from '../../broker/duplex-pair.js';

async function engine(tt: Test, opts: Partial<AedesOptions> = {}): Promise<{ port: number; broker: Aedes }> {
  const broker = await Aedes.createBroker(opts);
  const server = net.createServer(broker.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  tt.teardown(async () => {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { port: (server.address() as net.AddressInfo).port, broker };
}

async function session(tt: Test, port: number, connect: Record<string, unknown>, version: 4 | 5 = 5): Promise<WireClient> {
  const { c, connack } = await WireClient.connect(port, connect, version);
  tt.teardown(() => c.end());
  tt.equal(connack?.reasonCode ?? connack?.returnCode, 0, `${String(connect.clientId)} connected`);
  return c;
}

const publish = (c: WireClient, topic: string, extra: Record<string, unknown> = {}) =>
  c.send({ cmd: 'publish', topic, payload: Buffer.from(String(extra.payload ?? 'x')), qos: 0, retain: false, dup: false, ...extra });

async function serving(tt: Test, port: number): Promise<void> {
  const { c, connack } = await WireClient.connect(port, { clientId: 'afterwards' }, 4);
  c.end();
  tt.equal(connack?.returnCode, 0, 'the broker still serves a new client');
}

t.test('P1: client ids and filters named like Object.prototype members are ordinary keys (GHSA-52qw-whmv-87c5)', async (tt) => {
  const { port } = await engine(tt);
  for (const [id, version] of [
    ['__proto__', 4],
    ['constructor', 5],
    ['toString', 4],
    ['hasOwnProperty', 5],
  ] as const) {
    const a = await session(tt, port, { clientId: id }, version);
    // a second connection with the same id takes the first one over (the path that crashed)
    const b = await session(tt, port, { clientId: id }, version);
    tt.ok(await a.closedWithin(2000), `${id}: the first connection is taken over`);
    b.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: id, qos: 0 }] });
    tt.same((await b.next('suback'))?.granted, [0], `${id}: filter ${id} granted`);
    publish(b, id, { payload: id });
    tt.equal((await b.next('publish'))?.payload?.toString(), id, `${id}: delivered on filter ${id}`);
    // the same filter twice in one SUBSCRIBE goes through the dedupe map
    b.send({
      cmd: 'subscribe',
      messageId: 2,
      subscriptions: [
        { topic: '__proto__', qos: 0 },
        { topic: '__proto__', qos: 1 },
      ],
    });
    tt.same((await b.next('suback'))?.granted, [1], `${id}: a filter __proto__ given twice is granted once, the last QoS`);
  }
  await serving(tt, port);
});

t.test('P4: a repeated property is a Protocol Error, not a crash ([MQTT-2.2.2-2])', async (tt) => {
  const { port } = await engine(tt);
  // CONNECT, level 5, clean start, keepalive 30, properties: Session Expiry Interval (0x11) twice, client id "d"
  const c = await WireClient.open(port);
  tt.teardown(() => c.end());
  c.raw(
    Buffer.from([
      0x10, 0x18, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x05, 0x02, 0x00, 0x1e, 0x0a, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2, 0x00, 0x01, 0x64,
    ]),
  );
  tt.equal((await c.next('connack'))?.reasonCode, 0x82, 'CONNACK 0x82 for a repeated Session Expiry Interval');
  tt.ok(await c.closedWithin(2000), 'and the connection is closed');

  // the will's properties: Will Delay Interval (0x18) twice
  const { c: w, connack } = await WireClient.connect(port, {
    clientId: 'will-repeat',
    will: { topic: 'w', payload: Buffer.from('x'), qos: 0, retain: false, properties: { willDelayInterval: 1 } },
  });
  w.end();
  tt.equal(connack?.reasonCode, 0, 'a will with one Will Delay Interval is fine (control)');
  const w2 = await WireClient.open(port);
  tt.teardown(() => w2.end());
  // flags 0x06: will + clean start; will properties (10 bytes): 0x18 twice; will topic "w", payload "x"; client id "e"
  w2.raw(
    Buffer.from([
      0x10, 0x1f, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x05, 0x06, 0x00, 0x1e, 0x00, 0x00, 0x01, 0x65, 0x0a, 0x18, 0, 0, 0, 1, 0x18, 0, 0, 0,
      2, 0x00, 0x01, 0x77, 0x00, 0x01, 0x78,
    ]),
  );
  tt.equal((await w2.next('connack'))?.reasonCode, 0x82, "CONNACK 0x82 for a repeated property in the will's properties");

  // after CONNECT: SUBSCRIBE with the Subscription Identifier (0x0b) twice
  const s = await session(tt, port, { clientId: 'sub-repeat' });
  // packet id 1, properties (4 bytes): 0x0b 1, 0x0b 2; filter "a", options QoS 0
  s.raw(Buffer.from([0x82, 0x0b, 0x00, 0x01, 0x04, 0x0b, 0x01, 0x0b, 0x02, 0x00, 0x01, 0x61, 0x00]));
  tt.equal((await s.next('disconnect', 3000))?.reasonCode, 0x82, 'DISCONNECT 0x82 for a repeated Subscription Identifier');
  tt.equal((await s.all('suback', 100)).length, 0, 'no SUBACK');
  await serving(tt, port);
});

t.test('P5: a publish by topic alias reaches subscribers through mqemitter-redis (real redis-server)', async (tt) => {
  const redis = await startRedis(tt);
  const mq = mqemitterRedis({ connectionString: redis.url });
  // ioredis' ready check (INFO) fails on a connection that subscribed before it was ready
  const conns = mq as unknown as Record<'subConn' | 'pubConn', { status: string; once(e: 'ready', f: () => void): void }>;
  await Promise.all([conns.subConn, conns.pubConn].map((c) => c.status === 'ready' || new Promise<void>((r) => c.once('ready', r))));
  tt.teardown(() => new Promise<void>((resolve) => mq.close(() => resolve())));
  const { port } = await engine(tt, { mq, topicAliasMaximum: 10 });
  const s = await session(tt, port, { clientId: 'ta-sub' });
  s.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'ta/#', qos: 0 }] });
  await s.next('suback');
  const p = await session(tt, port, { clientId: 'ta-pub' });
  publish(p, 'ta/x', { payload: 'one', properties: { topicAlias: 1 } });
  publish(p, '', { payload: 'two', properties: { topicAlias: 1 } });
  const first = await s.next('publish', 3000);
  const second = await s.next('publish', 3000);
  tt.same(
    [first?.topic, first?.payload?.toString(), second?.topic, second?.payload?.toString()],
    ['ta/x', 'one', 'ta/x', 'two'],
    'both delivered on the resolved topic',
  );
  tt.equal(first?.properties?.topicAlias ?? second?.properties?.topicAlias, undefined, "the publisher's alias is not forwarded");
  tt.notOk(s.closed, 'the subscriber stays connected');
  tt.notOk(p.closed, 'the publisher stays connected');
});

t.test('P2: the inbound QoS 2 window (maxInflightInbound for 3.1.1, receive maximum 0x93 for 5)', async (tt) => {
  const { port } = await engine(tt, { maxInflightInbound: 5, receiveMaximum: 3 });
  const v4 = await session(tt, port, { clientId: 'q2-v4' }, 4);
  for (let i = 1; i <= 5; i++) publish(v4, 'q2', { qos: 2, messageId: i });
  tt.equal((await v4.all('pubrec', 500)).length, 5, '3.1.1: 5 PUBREC within the window');
  // a duplicate of an id awaiting PUBREL takes no second slot
  publish(v4, 'q2', { qos: 2, messageId: 5, dup: true });
  tt.equal((await v4.next('pubrec'))?.cmd, 'pubrec', '3.1.1: a DUP of an id in the window is answered');
  // releasing one frees its slot
  v4.send({ cmd: 'pubrel', messageId: 1 });
  await v4.next('pubcomp');
  publish(v4, 'q2', { qos: 2, messageId: 6 });
  tt.equal((await v4.next('pubrec'))?.cmd, 'pubrec', '3.1.1: a released slot takes a new id');
  publish(v4, 'q2', { qos: 2, messageId: 7 });
  tt.ok(await v4.closedWithin(2000), '3.1.1: the id past the window closes the connection');

  const v5 = await session(tt, port, { clientId: 'q2-v5' });
  for (let i = 1; i <= 4; i++) publish(v5, 'q2', { qos: 2, messageId: i });
  tt.equal((await v5.next('disconnect', 3000))?.reasonCode, 0x93, '5: DISCONNECT 0x93 (receive maximum exceeded) past the advertised 3');
  tt.equal(v5.received.filter((p) => p.cmd === 'pubrec').length, 3, '5: 3 PUBREC before it');
  await serving(tt, port);
});

t.test('P3: a QoS 2 id reused after a clean reconnect is a new message (GHSA-p8r9-qf8w-p73r)', async (tt) => {
  const redisServer = await startRedis(tt);
  const redis = new Redis(redisServer.url);
  tt.teardown(() => redis.quit());
  for (const [name, persistence] of [
    ['aedes-persistence (cleanIncoming)', () => new MemoryPersistence()],
    [
      "aedes-persistence-redis with mqprobe's cleanIncoming (real redis-server)",
      () => withCleanIncoming(persistenceRedis({ conn: redis }), redis) as MemoryPersistence,
    ],
    [
      'a persistence without cleanIncoming',
      () => {
        const p = new MemoryPersistence() as unknown as Record<string, unknown>;
        // an own property shadows the class method: the engine must feature-detect it
        p.cleanIncoming = undefined;
        return p as unknown as MemoryPersistence;
      },
    ],
  ] as const) {
    await tt.test(name, async (t2) => {
      const { port } = await engine(t2, { persistence: persistence() as unknown as AedesOptions['persistence'] });
      const s = await session(t2, port, { clientId: 'q2c-sub' }, 4);
      s.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'q2c', qos: 0 }] });
      await s.next('suback');
      const a = await session(t2, port, { clientId: 'q2c' }, 4);
      publish(a, 'q2c', { qos: 2, messageId: 7, payload: 'first' });
      await a.next('pubrec');
      a.end();
      await a.closedWithin();
      const b = await session(t2, port, { clientId: 'q2c' }, 4);
      publish(b, 'q2c', { qos: 2, messageId: 7, payload: 'second' });
      await b.next('pubrec');
      b.send({ cmd: 'pubrel', messageId: 7 });
      t2.equal((await b.next('pubcomp'))?.cmd, 'pubcomp', 'the release is completed');
      // without the method the engine cannot clear the old id (the clean connect must still work)
      if (name.includes('without')) return;
      const got = [(await s.next('publish'))?.payload?.toString(), (await s.next('publish'))?.payload?.toString()];
      t2.same(got, ['first', 'second'], 'the subscriber got both messages');
      if (!name.includes('redis')) return;
      b.end();
      await b.closedWithin();
      // the clean session's end wiped its inbound state (patch 05's close path): no key is left behind
      await t2.resolveMatch(
        (async () => {
          for (let i = 0; i < 50 && (await redis.keys('*incoming*')).length > 0; i++) await new Promise((r) => setTimeout(r, 50));
          return redis.keys('*incoming*');
        })(),
        [],
        `no incoming:q2c:* key nor ${incomingIdsKey('q2c')} left`,
      );
    });
  }
});

t.test('a User Property value cut short by the end of the PUBLISH is a Protocol Error, not a crash or a lost subscriber', async (tt) => {
  const crashes: unknown[] = [];
  const onCrash = (err: unknown) => crashes.push(err);
  process.on('uncaughtException', onCrash);
  tt.teardown(() => void process.off('uncaughtException', onCrash));
  const { port } = await engine(tt);
  // one subscriber with a Maximum Packet Size (the engine sizes what it sends it), one without
  const subs = [
    await session(tt, port, { clientId: 'up-sized', properties: { maximumPacketSize: 10_000 } }),
    await session(tt, port, { clientId: 'up-plain' }),
  ];
  for (const s of subs) {
    s.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'up/#', qos: 0 }] });
    await s.next('suback');
  }
  const p = await session(tt, port, { clientId: 'up-pub' });
  // PUBLISH QoS 0 "up/a", properties (6 bytes): user property "k" whose value claims 9 bytes the packet does not have
  p.raw(Buffer.from([0x30, 13, 0, 4, 0x75, 0x70, 0x2f, 0x61, 6, 0x26, 0, 1, 0x6b, 0, 9]));
  tt.equal((await p.next('disconnect', 3000))?.reasonCode, 0x82, 'the publisher gets DISCONNECT 0x82');
  publish(subs[0], 'up/b', { payload: 'after' });
  for (const s of subs)
    tt.same(
      (await s.all('publish', 500)).map((m) => m.payload?.toString()),
      ['after'],
      'a subscriber got only the next message',
    );
  tt.same(crashes, [], 'no uncaught exception');
});

t.test('patch 13: a CONNECT buffered in several chunks before the engine reads is parsed whole (Node.js 25+ read())', async (tt) => {
  const broker = await Aedes.createBroker();
  tt.teardown(() => new Promise<void>((resolve) => broker.close(() => resolve())));
  const [client, brokerSide] = duplexPair();
  broker.handle(brokerSide);
  const connect = mqttPacket.generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: true,
    clientId: 'chunked',
    keepalive: 0,
  });
  // one byte per write, all buffered before the engine's first 'readable': as an in-process client or a busy socket delivers them
  for (const byte of connect) client.write(Buffer.from([byte]));
  const got: number[] = [];
  client.on('data', (d: Buffer) => got.push(...d));
  const deadline = Date.now() + 3000;
  while (got.length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  tt.same(got, [0x20, 0x02, 0x00, 0x00], 'CONNACK 0 to the whole CONNECT');
  client.destroy();
});

t.test(
  'patch 50: announceClients false leaves out the per-client $SYS/<id>/new/clients and /disconnect/clients, not the events',
  async (tt) => {
    for (const announceClients of [undefined, false]) {
      type Listener = (p: { topic: string; payload: Buffer }, done: () => void) => void;
      const mq = mqemitter() as { on(topic: string, fn: Listener, subscribed: () => void): void };
      const { port, broker } = await engine(tt, announceClients === undefined ? { mq } : { mq, announceClients });
      const heard: string[] = [];
      const listen = (suffix: string) =>
        new Promise<void>((resolve) =>
          mq.on(
            `$SYS/${broker.id}/${suffix}`,
            (p, done) => {
              heard.push(`${p.topic.slice(broker.id.length + 6)} ${p.payload.toString()}`);
              done();
            },
            resolve,
          ),
        );
      await Promise.all([listen('new/clients'), listen('disconnect/clients')]);
      const events: string[] = [];
      broker.on('client', (c) => events.push(`client ${c.id}`));
      broker.on('clientDisconnect', (c) => events.push(`clientDisconnect ${c.id}`));
      const c = await session(tt, port, { clientId: 'announced' }, 4);
      c.send({ cmd: 'disconnect' });
      tt.ok(await c.closedWithin(2000), 'closed');
      // a client connected after the first one left: its events came after those of the first
      await serving(tt, port);
      await new Promise((resolve) => setImmediate(resolve));
      tt.same(events.slice(0, 2), ['client announced', 'clientDisconnect announced'], `${announceClients ?? 'default'}: the events`);
      tt.same(
        heard.slice(0, 2),
        announceClients === false ? [] : ['new/clients announced', 'disconnect/clients announced'],
        `${announceClients ?? 'default'}: the $SYS notices on the emitter`,
      );
    }
  },
);
/** The broker's side of a client, by client id (the engine's own object). */
type EngineClient = { subscriptions: object; closed: boolean; deliver0?: unknown };
const clientOf = (broker: Aedes, id: string) => (broker as unknown as { clients: Record<string, EngineClient> }).clients[id];

t.test('patch 55: per-client state is made on first use, and a socket reset without an end still closes its client', async (tt) => {
  const { port, broker } = await engine(tt);
  await session(tt, port, { clientId: 'idle-a' }, 4);
  await session(tt, port, { clientId: 'idle-b' }, 4);
  const [a, b] = [clientOf(broker, 'idle-a'), clientOf(broker, 'idle-b')];
  tt.equal(a.subscriptions, b.subscriptions, 'two idle clients share one empty subscription table');
  tt.ok(Object.isFrozen(a.subscriptions), 'which nobody can write to');
  tt.notOk(Object.hasOwn(a, 'deliver0'), 'no delivery closure before a subscription needs one');

  const sub = await session(tt, port, { clientId: 'subscriber' }, 4);
  sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'lazy/+', qos: 1 }] });
  tt.same((await sub.next('suback'))?.granted, [1], 'SUBACK');
  const s = clientOf(broker, 'subscriber');
  tt.not(s.subscriptions, a.subscriptions, 'the subscriber has a table of its own');
  tt.ok(Object.hasOwn(s, 'deliverQoS'), 'and its own delivery closure');
  tt.equal(a.subscriptions, b.subscriptions, 'the idle ones still share theirs');
  const pub = await session(tt, port, { clientId: 'publisher' }, 4);
  publish(pub, 'lazy/x', { qos: 1, messageId: 7, payload: 'one' });
  tt.equal((await sub.next('publish'))?.payload?.toString(), 'one', 'the subscriber gets a message');

  // a socket destroyed without an error (no 'end', no 'error', only 'close': what the engine does on
  // DISCONNECT) closes its client: stream.finished used to notice it, now a 'close' listener
  const disconnected = new Promise<string>((resolve) => broker.on('clientDisconnect', (c) => resolve(c.id)));
  (clientOf(broker, 'idle-a') as unknown as { conn: net.Socket }).conn.destroy();
  tt.equal(await disconnected, 'idle-a', 'the client of a destroyed socket is disconnected');

  // a stream already closed when the engine gets it is closed at once, not at the connect timeout
  const [, closedEnd] = duplexPair();
  closedEnd.destroy();
  await new Promise((resolve) => closedEnd.once('close', resolve));
  const late = broker.handle(closedEnd) as unknown as EngineClient;
  await new Promise((resolve) => setImmediate(resolve));
  tt.ok(late.closed, 'a client on an already closed stream is closed');
});

t.test('patch 56: keep alive on one timer per broker expires each client 1.5 × its keepalive after its last packet', async (tt) => {
  const { port, broker } = await engine(tt);
  const expired: string[] = [];
  broker.on('keepaliveTimeout', (c) => expired.push(c.id));
  const started = Date.now();
  const silent1 = await session(tt, port, { clientId: 'silent-1', keepalive: 1 }, 4);
  const silent2 = await session(tt, port, { clientId: 'silent-2', keepalive: 2 }, 4);
  const pinging = await session(tt, port, { clientId: 'pinging', keepalive: 1 }, 4);
  const leaving = await session(tt, port, { clientId: 'leaving', keepalive: 1 }, 4);
  const timer = setInterval(() => pinging.send({ cmd: 'pingreq' }), 300);
  tt.teardown(() => clearInterval(timer));
  leaving.send({ cmd: 'disconnect' });
  tt.ok(await silent1.closedWithin(8000), 'keepalive 1, silent: closed');
  tt.ok(Date.now() - started >= 1500, 'not before 1.5 s');
  tt.ok(await silent2.closedWithin(8000), 'keepalive 2, silent: closed');
  tt.ok(Date.now() - started >= 3000, 'not before 3 s');
  tt.notOk(pinging.closed, 'keepalive 1, a PINGREQ every 300 ms: still connected');
  tt.same(expired.sort(), ['silent-1', 'silent-2'], 'keepaliveTimeout for the two silent clients only (not the one that left)');
  clearInterval(timer);
  pinging.end();
  const keepAlive = () => (broker as unknown as { _keepAlive: { clients: number; timer: unknown } })._keepAlive;
  const deadline = Date.now() + 5000;
  while (keepAlive().clients > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  tt.equal(keepAlive().clients, 0, 'no client left with a keep alive');
  tt.equal(keepAlive().timer, null, 'and no timer left to hold the process');
});

t.test('patch 57: the parser keeps the protocol version of the CONNECT, not the CONNECT with its password', async (tt) => {
  const { port, broker } = await engine(tt);
  const settingsOf = (id: string) =>
    (clientOf(broker, id) as unknown as { _parser: { settings: Record<string, unknown> } })._parser.settings;
  const sub = await session(tt, port, { clientId: 'v5-sub', username: 'u', password: Buffer.from('s3cret') }, 5);
  await session(tt, port, { clientId: 'v5-other' }, 5);
  tt.same(settingsOf('v5-sub'), { protocolVersion: 5, bridgeMode: false }, 'protocol version 5, no password, no client id');
  tt.equal(settingsOf('v5-sub'), settingsOf('v5-other'), 'one settings object for the clients of one version');
  // the packets after the CONNECT are still read as MQTT 5 (properties)
  sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'v5/t', qos: 0 }], properties: { userProperties: { a: 'b' } } });
  tt.same((await sub.next('suback'))?.granted, [0], 'a SUBSCRIBE with properties is read as MQTT 5');
  const pub = await session(tt, port, { clientId: 'v5-pub' }, 5);
  publish(pub, 'v5/t', { payload: 'p5', properties: { userProperties: { k: 'v' } } });
  const got = await sub.next('publish');
  tt.equal(got?.payload?.toString(), 'p5', 'a PUBLISH with a User Property is delivered');
});
