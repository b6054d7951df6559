import t from 'tap';
import { closeSync, openSync, readdirSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { freePort, spawnCli, waitForPort } from '../helpers/broker.js';
import { connectClient, connectCollecting, until } from '../helpers/mqtt.js';
import { mosquittoWrittenDb, persistenceConf, sha256File, startPersistentMosquitto, writableDir } from '../helpers/mosquitto-db.js';
import { readMosquittoDb } from '../../broker/persistence/mosquitto-db/reader.js';
import { MosquittoDbError } from '../../broker/persistence/mosquitto-db/cursor.js';
import { MAX_IMPORT_BYTES, importMosquittoDb } from '../../broker/persistence/mosquitto-db/import.js';

const real = await mosquittoWrittenDb(t);
const FILE = '/x/mosquitto.db';
const HEADER = 23; // magic 15, crc 4, version 4
const CFG_BODY = HEADER + 8; // v6 chunk header: u32 type, u32 length
const STORE_BODY = CFG_BODY + 16 + 8; // the first message store chunk follows the 16-byte cfg chunk

/** Offsets where a v6 chunk starts, walked from the chunk headers. */
function chunkStarts(b: Buffer): Set<number> {
  const starts = new Set<number>();
  for (let pos = HEADER; pos + 8 <= b.length; pos += 8 + b.readUInt32BE(pos + 4)) starts.add(pos);
  starts.add(b.length);
  return starts;
}

function refusal(b: Buffer): MosquittoDbError {
  try {
    readMosquittoDb(b, FILE);
  } catch (err) {
    if (err instanceof MosquittoDbError) return err;
    throw err;
  }
  throw new Error('the damaged file was accepted');
}

const patched = (at: number, write: (b: Buffer) => void) => {
  const b = Buffer.from(real.bytes);
  write(b.subarray(at));
  return b;
};

t.test('the Mosquitto-written file reads whole (the baseline the damage below is made from)', async (t) => {
  const db = readMosquittoDb(real.bytes, real.file);
  t.equal(db.version, 6);
  t.equal(db.retained.length, 2);
  t.same(db.sessions.map((s) => s.clientId).sort(), ['sleeper', 'sleeper2']);
});

t.test('truncated at every length: refused with the file and offset, except exactly between two chunks', async (t) => {
  const starts = chunkStarts(real.bytes);
  let refused = 0;
  for (let cut = 0; cut < real.bytes.length; cut++) {
    const b = real.bytes.subarray(0, cut);
    if (cut >= HEADER && starts.has(cut)) {
      // the format has no checksum or chunk count: a file cut between chunks is a smaller valid file (Mosquitto reads it so too)
      t.doesNotThrow(() => readMosquittoDb(b, FILE), `cut at chunk boundary ${cut} reads`);
      continue;
    }
    const err = refusal(b);
    if (!err.message.startsWith(`${FILE}: not a readable Mosquitto persistence file at byte `) || err.offset > cut)
      t.fail(`cut at ${cut}: ${err.message}`);
    refused++;
  }
  t.equal(
    refused,
    real.bytes.length - [...starts].filter((s) => s >= HEADER && s < real.bytes.length).length,
    'every other cut is refused with a clear error',
  );
});

t.test('every single-bit flip is either refused with a MosquittoDbError or read; nothing else escapes', async (t) => {
  let refused = 0;
  let read = 0;
  for (let i = 0; i < real.bytes.length; i++) {
    for (let bit = 0; bit < 8; bit++) {
      const b = Buffer.from(real.bytes);
      b[i] ^= 1 << bit;
      try {
        readMosquittoDb(b, FILE);
        read++;
      } catch (err) {
        if (!(err instanceof MosquittoDbError)) throw err;
        refused++;
      }
    }
  }
  t.ok(
    refused > 0 && read > 0,
    `${refused} flips refused, ${read} read (payload bytes, ids and times have no check: the file has no checksum)`,
  );
});

t.test('structural damage is refused with what is wrong and where', async (t) => {
  const cases: [string, Buffer, RegExp, number][] = [
    ['wrong magic', patched(3, (b) => (b[0] ^= 0x20)), /wrong magic/, 0],
    ['an SQLite file (Mosquitto 2.1 persist-sqlite)', Buffer.from('SQLite format 3\0' + '\0'.repeat(84)), /wrong magic/, 0],
    ['an empty file', Buffer.alloc(0), /the file is empty/, 0],
    ['db version 7', patched(19, (b) => b.writeUInt32BE(7)), /unsupported db version 7 \(supported: 2, 3, 4, 5, 6\)/, 19],
    ['db version 1', patched(19, (b) => b.writeUInt32BE(1)), /unsupported db version 1/, 19],
    ['unknown chunk type', patched(HEADER, (b) => b.writeUInt32BE(99)), /unknown chunk type 99/, HEADER],
    [
      'a 4 GB chunk length',
      patched(HEADER + 4, (b) => b.writeUInt32BE(0xffffffff)),
      /chunk of type 1 claims 4294967295 bytes, only \d+ left/,
      HEADER,
    ],
    ['a 4 GB payload length', patched(STORE_BODY + 16, (b) => b.writeUInt32BE(0xffffffff)), /payload needs 4294967295 bytes/, -1],
    ['qos 7 in a stored message', patched(STORE_BODY + 30, (b) => (b[0] = 7)), /message qos is 7, expected 0, 1 or 2/, STORE_BODY + 30],
    ['db id size 4', patched(CFG_BODY + 9, (b) => (b[0] = 4)), /db id size is 4 bytes, expected 8/, -1],
  ];
  for (const [what, b, message, offset] of cases) {
    const before = process.memoryUsage().arrayBuffers;
    const err = refusal(b);
    t.match(err.message, message, what);
    t.match(
      err.message,
      new RegExp(`^${FILE}: not a readable Mosquitto persistence file at byte \\d+: `),
      `${what}: names the file and the offset`,
    );
    if (offset >= 0) t.equal(err.offset, offset, `${what}: at byte ${offset}`);
    t.ok(process.memoryUsage().arrayBuffers - before < 64 * 1024 * 1024, `${what}: nothing large was allocated`);
  }
});

t.test('a store id no message carries is refused (a dangling reference is damage, not an expired message)', async (t) => {
  const retainChunk = [...chunkStarts(real.bytes)].filter((s) => s < real.bytes.length && real.bytes.readUInt32BE(s) === 4)[0];
  const b = patched(retainChunk + 8, (x) => x.writeBigUInt64LE(0xdeadn));
  t.match(refusal(b).message, /a retain chunk refers to message store id 57005, which is not in the file/);
});

t.test('a file larger than the import limit is refused before it is read (sparse file)', async (t) => {
  const dir = writableDir(t);
  const big = join(dir, 'mosquitto.db');
  writeFileSync(big, real.bytes);
  truncateSync(big, MAX_IMPORT_BYTES + 1);
  const lines: string[] = [];
  const log = pino({ level: 'info' }, new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }));
  t.equal(importMosquittoDb(big, undefined, `${big}.mqprobe.json`, log), undefined, 'nothing imported');
  t.match(lines.join(''), /more than the 1073741824 mqprobe imports.*left as it is/);
});

t.test(
  'mqprobe given a damaged mosquitto.db starts on its own snapshot, says why, and never touches the file; Mosquitto refuses it',
  async (t) => {
    const cutInChunk = (b: Buffer) => b.subarray(0, STORE_BODY + 10);
    const absurdLength = (b: Buffer) => {
      const d = Buffer.from(b);
      d.writeUInt32BE(0xfffffff0, STORE_BODY - 4);
      return d;
    };
    for (const [what, damage] of [
      ['truncated', cutInChunk],
      ['absurd chunk length', absurdLength],
    ] as const) {
      const dir = writableDir(t);
      const db = join(dir, 'mosquitto.db');
      writeFileSync(db, damage(real.bytes));
      const before = sha256File(db);
      const port = await freePort();
      const conf = join(dir, 'mqprobe.conf');
      writeFileSync(conf, `listener ${port} 127.0.0.1\n${persistenceConf(dir)}log_dest stdout\n`);
      const start = async () => {
        const p = spawnCli(t, ['-c', conf]);
        await waitForPort(port);
        await until(
          () => /cannot import .*mosquitto\.db: not a readable Mosquitto persistence file at byte \d+: .*left as it is/.test(p.output()),
          10_000,
          `${what}: the error line`,
        );
        return p;
      };
      const first = await start();
      const c = await connectClient(t, `mqtt://127.0.0.1:${port}`);
      await c.publishAsync('own/retained', 'mine', { qos: 1, retain: true });
      await c.endAsync();
      first.child.kill('SIGTERM');
      t.equal(await first.exited, 0, `${what}: mqprobe ran and stopped cleanly`);
      t.equal(sha256File(db), before, `${what}: the damaged file is byte-identical`);
      t.same(
        readdirSync(dir).sort(),
        ['mosquitto.db', 'mosquitto.db.mqprobe.json', 'mqprobe.conf'],
        `${what}: nothing moved or added beside it but the snapshot`,
      );
      const second = await start();
      const { client: reader, got } = await connectCollecting(t, `mqtt://127.0.0.1:${port}`, { clientId: 'reader' });
      await reader.subscribeAsync('own/#');
      await until(() => got.length === 1, 5000, 'the retained message');
      t.equal(got[0].payload.toString(), 'mine', `${what}: mqprobe's own snapshot carried its state across the restart`);
      await reader.endAsync();
      second.child.kill('SIGTERM');
      await second.exited;
      t.equal(sha256File(db), before, `${what}: still byte-identical after a restart`);
    }
    // the same damaged file given to Mosquitto 2.0.11: it does not start (docs/persistence.md)
    const dir = writableDir(t);
    const fd = openSync(join(dir, 'mosquitto.db'), 'w', 0o666);
    writeSync(fd, cutInChunk(real.bytes));
    closeSync(fd);
    await t.rejects(startPersistentMosquitto(t, dir), /mosquitto exited \(1\) before listening/, 'Mosquitto refuses to start on it');
  },
);
