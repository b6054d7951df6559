import t from 'tap';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { connectClient } from '../helpers/mqtt.js';
import { persistenceConf, startPersistentMosquitto, writableDir } from '../helpers/mosquitto-db.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { MOSQUITTO_DB_MAGIC, readMosquittoDb } from '../../broker/persistence/mosquitto-db/reader.js';
import { mosquittoDbToSnapshot } from '../../broker/persistence/mosquitto-db/import.js';
import { SnapshotPersistence } from '../../broker/engine/persistence/snapshot.js';

t.test(
  'Mosquitto 2.0.11 with MQTT 5 publishes: properties, expiry times, session expiry and subscription options are read, an expired message is left out',
  async (t) => {
    const dir = writableDir(t);
    const mosq = await startPersistentMosquitto(t, dir);
    const sub = await connectClient(t, mosq.url, {
      clientId: 's5',
      clean: false,
      protocolVersion: 5,
      properties: { sessionExpiryInterval: 3600 },
    });
    await sub.subscribeAsync('v5/#', { qos: 1 });
    await sub.endAsync();
    // connected while Mosquitto stops: its session's expiry has not started counting in the file
    await connectClient(t, mosq.url, { clientId: 'live5', clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 600 } });
    const pub = (topic: string, payload: string, ...props: string[]) => {
      const r = spawnSync('mosquitto_pub', [
        '-V',
        'mqttv5',
        '-p',
        String(mosq.port),
        '-q',
        '1',
        '-t',
        topic,
        '-m',
        payload,
        ...props.flatMap((p) => ['-D', 'publish', ...p.split(' ')]),
      ]);
      t.equal(r.status, 0, `mosquitto_pub ${topic}`);
    };
    pub('v5/props', 'hello', 'user-property k v', 'content-type text/plain');
    pub('v5/short', 'gone', 'message-expiry-interval 1');
    pub('v5/long', 'stays', 'message-expiry-interval 3600');
    await mosq.stop('SIGTERM');
    const file = join(dir, 'mosquitto.db');
    const db = readMosquittoDb(readFileSync(file), file, Math.floor(Date.now() / 1000) + 5); // 5 s later: v5/short has expired
    t.equal(db.version, 6);
    t.equal(db.expired, 1, 'the message past its expiry is left out, as Mosquitto leaves it out');
    const s5 = db.sessions.find((s) => s.clientId === 's5');
    t.same(
      s5?.messages.map((m) => [m.topic, m.payload.toString(), m.qos, m.properties, m.expiryTime !== undefined]),
      [
        ['v5/props', 'hello', 1, { userProperties: { k: 'v' }, contentType: 'text/plain' }, false],
        ['v5/long', 'stays', 1, {}, true],
      ],
      'queued messages with their properties (the expiry is a field of its own, not a property)',
    );
    const expiryTime = s5!.messages[1].expiryTime!;
    t.ok(Math.abs(expiryTime - (Date.now() / 1000 + 3600)) < 120, 'the expiry time is when the hour from its publish ends');
    t.same(
      s5?.subscriptions,
      [{ topic: 'v5/#', qos: 1, identifier: 0, noLocal: false, retainAsPublished: false }],
      'the subscription and its options',
    );
    t.equal(s5?.expiry?.interval, 3600, 'the session expiry interval');
    const live5 = db.sessions.find((s) => s.clientId === 'live5');
    t.same(live5?.expiry, { interval: 600, time: 0 }, 'a session whose client was connected: its interval, no expiry time yet');
    const mtimeMs = statSync(file).mtimeMs;
    const { snapshot } = mosquittoDbToSnapshot(db, 'test', mtimeMs);
    const expiryOf = (id: string) => snapshot.sessions.find((s) => s.clientId === id)?.expiry;
    t.same(expiryOf('live5'), { interval: 600, endedAt: Math.floor(mtimeMs) }, 'its connection ended when the file was written');
    const report = await new SnapshotPersistence().restore(snapshot);
    t.same(report, { skipped: [], expiredSessions: 0, expiredMessages: 0 }, 'the restore takes every imported record');
    t.equal(expiryOf('s5')?.interval, 3600);
    t.ok(Math.abs(expiryOf('s5')!.endedAt - Date.now()) < 120_000, 'the other one counts from when its client left');
    t.ok(Math.abs(s5!.expiry!.time - (Date.now() / 1000 + 3600)) < 120, 'the session expires an hour after its client left');
    const bytes = readFileSync(file);
    const userProperty = bytes.indexOf(Buffer.from([0x26, 0x00, 0x01, 0x6b])); // id 0x26, name "k"
    t.ok(userProperty > 0, 'the user property is in the file');
    const badId = Buffer.from(bytes);
    badId[userProperty] = 0x27;
    t.throws(
      () => readMosquittoDb(badId, file),
      { message: new RegExp(`at byte ${userProperty}: property id 39 is not a PUBLISH property`) },
      'a property id a PUBLISH cannot carry: refused',
    );
    const longName = Buffer.from(bytes);
    longName.writeUInt16BE(0xffff, userProperty + 1);
    t.throws(
      () => readMosquittoDb(longName, file),
      { message: /user property|property value needs 65535 bytes/ },
      'a property length past its block: refused',
    );
  },
);

t.test("a 3.1.1 session under Mosquitto's persistent_client_expiration expires when Mosquitto would expire it", async (t) => {
  const dir = writableDir(t);
  const mosq = await startMosquitto(t, `${persistenceConf(dir)}persistent_client_expiration 1h\n`, { dir });
  await (await connectClient(t, mosq.url, { clientId: 'old311', clean: false })).endAsync();
  await mosq.stop('SIGTERM');
  const file = join(dir, 'mosquitto.db');
  const db = readMosquittoDb(readFileSync(file), file);
  const expiry = db.sessions.find((s) => s.clientId === 'old311')?.expiry;
  t.equal(expiry?.interval, 0xffffffff, 'its own interval: never');
  t.ok(Math.abs(expiry!.time - (Date.now() / 1000 + 3600)) < 120, 'its expiry time: an hour after its client left');
  const mtimeMs = statSync(file).mtimeMs;
  const kept = mosquittoDbToSnapshot(db, 'test', mtimeMs).snapshot.sessions.find((s) => s.clientId === 'old311')?.expiry;
  t.equal(kept && kept.endedAt + kept.interval * 1000 >= expiry!.time * 1000, true, 'mqprobe expires it then');
  t.ok(kept && kept.endedAt + kept.interval * 1000 - expiry!.time * 1000 < 1000, 'not later than a second after');
});

// No Mosquitto 1.4-1.6 binary can be had here: these files are built from the layout that Mosquitto's
// src/persist_read_v234.c and persist_read_v5.c read (the format of versions 2-5), then read back.
const u8 = (n: number) => Buffer.from([n]);
const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const u64le = (n: number) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
};
const prefixed = (s: string) => Buffer.concat([u16(Buffer.byteLength(s)), Buffer.from(s)]);
const pad = (n: number) => Buffer.alloc(n);

function dbFile(version: number, chunks: [number, Buffer[]][]): Buffer {
  const parts = [MOSQUITTO_DB_MAGIC, u32(0), u32(version)];
  for (const [type, fields] of chunks) {
    const body = Buffer.concat(fields);
    parts.push(version >= 5 ? u32(type) : u16(type), u32(body.length), body);
  }
  return Buffer.concat(parts);
}

/** One retained message (store 1), one queued for `old-client` (store 2), its subscription and client record. */
function oldFile(version: number): Buffer {
  if (version === 5) {
    const store = (id: number, topic: string, payload: string, retain: number) => [
      u64le(id),
      pad(8),
      u32(payload.length),
      u16(0),
      u16(3),
      u16(0),
      u16(topic.length),
      u16(0),
      u8(1),
      u8(retain),
      Buffer.from('pub'),
      Buffer.from(topic),
      Buffer.from(payload),
    ];
    return dbFile(5, [
      [1, [u64le(2), u8(1), u8(8), pad(6)]],
      [2, store(1, 'old/retained', 'r', 1)],
      [2, store(2, 'old/queued', 'q', 0)],
      [6, [pad(8), u32(0), u16(1), u16(10), Buffer.from('old-client')]],
      [3, [u64le(2), u16(1), u16(10), u8(1), u8(11), u8(0), u8(1), Buffer.from('old-client')]],
      [5, [u32(0), u16(10), u16(5), u8(1), u8(0), pad(2), Buffer.from('old-client'), Buffer.from('old/#')]],
      [4, [u64le(1)]],
    ]);
  }
  const source = version === 4 ? [prefixed('pub'), prefixed('user'), u16(1883)] : [prefixed('pub')];
  const store = (id: number, topic: string, payload: string, retain: number) => [
    u64le(id),
    ...source,
    u16(0),
    u16(0),
    prefixed(topic),
    u8(1),
    u8(retain),
    u32(payload.length),
    Buffer.from(payload),
  ];
  return dbFile(version, [
    [1, [u8(1), u8(8), u64le(2)]],
    [2, store(1, 'old/retained', 'r', 1)],
    [2, store(2, 'old/queued', 'q', 0)],
    [6, [prefixed('old-client'), u16(1), ...(version === 2 ? [] : [pad(8)])]],
    [3, [prefixed('old-client'), u64le(2), u16(1), u8(1), u8(0), u8(1), u8(11), u8(0)]],
    [5, [prefixed('old-client'), prefixed('old/#'), u8(1)]],
    [4, [u64le(1)]],
  ]);
}

for (const [version, writer] of [
  [2, 'Mosquitto 1.3 and older'],
  [3, 'Mosquitto 1.4 to 1.5.5'],
  [4, 'Mosquitto 1.5.6 to 1.5.x'],
  [5, 'Mosquitto 1.6'],
] as const) {
  t.test(
    `db version ${version} (${writer}), replayed from the documented format: retained message, session, subscription and queued message`,
    async (t) => {
      const db = readMosquittoDb(oldFile(version), `v${version}.db`);
      t.equal(db.version, version);
      t.same(
        db.retained.map((m) => [m.topic, m.payload.toString(), m.qos, m.retain]),
        [['old/retained', 'r', 1, true]],
      );
      t.same(
        db.sessions.map((s) => ({
          id: s.clientId,
          subs: s.subscriptions,
          queued: s.messages.map((m) => [m.topic, m.payload.toString(), m.qos, m.state, m.direction]),
        })),
        [
          {
            id: 'old-client',
            subs: [{ topic: 'old/#', qos: 1, identifier: 0, noLocal: false, retainAsPublished: false }],
            queued: [['old/queued', 'q', 1, 11, 'out']],
          },
        ],
      );
      const cut = oldFile(version).subarray(0, -3);
      t.throws(
        () => readMosquittoDb(cut, `v${version}.db`),
        { name: 'MosquittoDbError', message: new RegExp(`^v${version}\\.db: not a readable Mosquitto persistence file at byte \\d+: `) },
        'truncated: refused',
      );
    },
  );
}

// MQTT 5 fields of db version 6 (Mosquitto 2.0's persist_read_v5.c layout) with values Mosquitto never writes
const v6Store = (properties: Buffer) => {
  const topic = 'v6/t';
  return [
    u64le(1),
    u64le(0),
    u32(1),
    u16(0),
    u16(0),
    u16(0),
    u16(topic.length),
    u16(0),
    u8(1),
    u8(0),
    Buffer.from(topic),
    Buffer.from('p'),
    u8(properties.length),
    properties,
  ];
};
const v6Sub = (identifier: number, options: number) => [
  u32(identifier),
  u16(1),
  u16(3),
  u8(1),
  u8(options),
  pad(2),
  Buffer.from('c'),
  Buffer.from('v6/'),
];
const v6Client = (expiryTime: bigint) => {
  const time = Buffer.alloc(8);
  time.writeBigInt64LE(expiryTime);
  return [time, u32(60), u16(0), u16(1), u16(0), u16(0), pad(4), Buffer.from('c')];
};
const text = (id: number, s: string) => Buffer.concat([u8(id), prefixed(s)]);

t.test('db version 6: MQTT 5 fields out of range are refused with what is wrong; ones a delivery sets are read over', async (t) => {
  const read = (chunks: [number, Buffer[]][]) => readMosquittoDb(dbFile(6, chunks), 'v6.db');
  const ok = read([
    [
      2,
      v6Store(Buffer.concat([Buffer.from([0x0b, 0x05]), text(0x26, 'a'), prefixed('1'), text(0x26, 'a'), prefixed('2'), u8(0x01), u8(1)])),
    ],
    [4, [u64le(1)]],
    [6, v6Client(0n)],
    [5, v6Sub(7, 0x0c)],
  ]);
  t.same(
    ok.retained[0].properties,
    { userProperties: { a: ['1', '2'] }, payloadFormatIndicator: true },
    'a repeated user property keeps both values',
  );
  t.same(ok.sessions[0].subscriptions, [{ topic: 'v6/', qos: 1, identifier: 7, noLocal: true, retainAsPublished: true }]);
  const cases: [string, [number, Buffer[]][], RegExp][] = [
    ['a content type twice', [[2, v6Store(Buffer.concat([text(0x03, 'a'), text(0x03, 'b')]))]], /property contentType appears twice/],
    ['payload format indicator 2', [[2, v6Store(Buffer.from([0x01, 2]))]], /payload format indicator is 2, expected 0 or 1/],
    ['retain handling bits in the options', [[5, v6Sub(1, 0x30)]], /subscription options are 0x30, expected only bits 0x0c/],
    [
      'a subscription identifier past the varint range',
      [[5, v6Sub(0x10000000, 0)]],
      /subscription identifier is 268435456, more than 268435455/,
    ],
    ['a negative session expiry time', [[6, v6Client(-1n)]], /session expiry time -1 is not a time/],
  ];
  for (const [what, chunks, message] of cases) t.throws(() => read(chunks), { name: 'MosquittoDbError', message }, what);
});
