import t from 'tap';
import { createHash, pbkdf2Sync, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { argon2id } from 'hash-wasm';
import { describeSkippedLine, loadPasswordFile } from '../../broker/auth/password-file.js';
import { ARGON2_LIMITS } from '../../broker/auth/argon2.js';
import { startTestBroker, tempDir } from '../helpers/broker.js';
import { run, startMosquitto } from './peers.js';

/** Mosquitto 2.1's `$7$`: PBKDF2-HMAC-SHA512, 64-byte salt, 1000 iterations (libcommon/password_common.c), made here with Node's crypto. */
function pbkdf2Line(password: string, iterations = 1000, saltBytes = 64): string {
  const salt = randomBytes(saltBytes);
  return `$7$${iterations}$${salt.toString('base64')}$${pbkdf2Sync(password, salt, iterations, 64, 'sha512').toString('base64')}`;
}

/** Mosquitto 2.1's `$6$` (for 1.x files): one SHA-512 over password then a 64-byte salt. */
function sha512Line(password: string): string {
  const salt = randomBytes(64);
  return `$6$${salt.toString('base64')}$${createHash('sha512').update(password).update(salt).digest('base64')}`;
}

/** An argon2id PHC line made with hash-wasm in the test; Mosquitto 2.1's parameters unless told otherwise. */
function argonLine(password: string, o: { m?: number; t?: number; p?: number; salt?: number; hash?: number } = {}): Promise<string> {
  return argon2id({
    password,
    salt: randomBytes(o.salt ?? 64),
    memorySize: o.m ?? 47104,
    iterations: o.t ?? 1,
    parallelism: o.p ?? 1,
    hashLength: o.hash ?? 64,
    outputType: 'encoded',
  });
}

t.test('Mosquitto 2.1 lines verify: $7$ and $6$ with 64-byte salts, argon2id at 2.1 and other parameters', async (t) => {
  const dir = tempDir();
  const users: [string, string, string][] = [
    ['pbkdf2-21', 'pbkdf2 pw ✓', pbkdf2Line('pbkdf2 pw ✓')],
    ['pbkdf2-21-many', 'many', pbkdf2Line('many', 20_000)],
    ['sha512-21', 'old style', sha512Line('old style')],
    ['argon-21', 'argon pw ✓', await argonLine('argon pw ✓')],
    ['argon-owasp2', 'second', await argonLine('second', { m: 19456, t: 2, salt: 16, hash: 32 })],
    ['argon-lanes', 'lanes', await argonLine('lanes', { m: 8192, t: 3, p: 4, salt: 8, hash: 16 })],
  ];
  const file = join(dir, 'passwd');
  writeFileSync(file, users.map(([u, , line]) => `${u}:${line}\n`).join(''));
  t.match(
    users[3][2],
    /^\$argon2id\$v=19\$m=47104,t=1,p=1\$[A-Za-z0-9+/]{86}\$[A-Za-z0-9+/]{86}$/,
    'the PHC string libargon2 writes for Mosquitto 2.1',
  );
  const pw = await loadPasswordFile(file);
  t.same(pw.skipped, [], 'no line skipped');
  t.same(
    pw.users(),
    users.map(([u]) => u),
  );
  for (const [user, password] of users) {
    t.equal(await pw.verify(user, Buffer.from(password)), 'ok', `${user} verifies`);
    t.equal(await pw.verify(user, Buffer.from(password + ' ')), 'bad-password', `${user}: wrong password refused`);
    t.equal(await pw.verify(user, undefined), 'bad-password', `${user}: no password refused`);
  }
});

t.test('argon2id lines written by the reference libargon2 (the argon2 CLI, the library Mosquitto 2.1 links) verify', async (t) => {
  const dir = tempDir();
  const made = await run(
    t,
    'argon2',
    ['somesalt-of-16b!', '-id', '-t', '1', '-k', '47104', '-p', '1', '-l', '64', '-e'],
    'libargon2 password',
  );
  t.equal(made.code, 0, `argon2 ran: ${made.stderr}`);
  const line = made.stdout.trim();
  t.match(line, /^\$argon2id\$v=19\$m=47104,t=1,p=1\$/);
  writeFileSync(join(dir, 'passwd'), `ref:${line}\n`);
  const pw = await loadPasswordFile(join(dir, 'passwd'));
  t.equal(await pw.verify('ref', Buffer.from('libargon2 password')), 'ok');
  t.equal(await pw.verify('ref', Buffer.from('libargon2 passwore')), 'bad-password');
});

t.test('hostile argon2id lines remove that user and are never run', async (t) => {
  const dir = tempDir();
  const good = await argonLine('pw', { m: 64, t: 1, salt: 16, hash: 32 });
  const [, , , , salt, hash] = good.split('$');
  const phc = (params: string, s = salt, h = hash, head = '$argon2id$v=19$') => `${head}${params}$${s}$${h}`;
  const b64 = (n: number) => randomBytes(n).toString('base64').replace(/=+$/, '');
  const cases: [string, string, RegExp][] = [
    [
      'memory that would exhaust the machine (4 TiB)',
      phc('m=4294967295,t=1,p=1'),
      /memory m=4294967295 KiB is above mqprobe's limit of 262144 KiB/,
    ],
    ['memory just above the limit', phc(`m=${ARGON2_LIMITS.maxMemoryKiB + 1},t=1,p=1`), /above mqprobe's limit of 262144 KiB/],
    ['memory × passes above the limit', phc('m=262144,t=5,p=1'), /cost m×t=1310720 KiB is above mqprobe's limit of 1048576 KiB/],
    ['absurd passes', phc('m=64,t=9999999999,p=1'), /cost m×t=.* is above/],
    ['11-digit parameter', phc('m=99999999999,t=1,p=1'), /malformed \$argon2id\$ hash/],
    ['zero passes', phc('m=64,t=0,p=1'), /passes t must be at least 1/],
    ['zero lanes', phc('m=64,t=1,p=0'), /lanes p=0 outside 1\.\.16/],
    ['too many lanes', phc('m=4096,t=1,p=17'), /lanes p=17 outside 1\.\.16/],
    ['memory below 8 KiB per lane', phc('m=31,t=1,p=4'), /below the minimum of 8 KiB per lane/],
    ['version 16', phc('m=64,t=1,p=1', salt, hash, '$argon2id$v=16$'), /argon2 version 16 is not supported/],
    ['no version (libargon2 reads 16)', phc('m=64,t=1,p=1', salt, hash, '$argon2id$'), /argon2 version 16 is not supported/],
    ['argon2i', phc('m=64,t=1,p=1', salt, hash, '$argon2i$v=19$'), /unsupported hash type/],
    ['argon2d', phc('m=64,t=1,p=1', salt, hash, '$argon2d$v=19$'), /unsupported hash type/],
    ['parameters out of order', phc('t=1,m=64,p=1'), /malformed \$argon2id\$ hash/],
    ['an extra parameter', phc('m=64,t=1,p=1,keyid=abc'), /malformed \$argon2id\$ hash/],
    ['padded base64', phc('m=64,t=1,p=1', `${salt}==`), /malformed \$argon2id\$ hash/],
    ['truncated salt (a dangling character)', phc('m=64,t=1,p=1', `${salt}AAA`), /salt is not valid base64/],
    ['truncated hash (a dangling character)', phc('m=64,t=1,p=1', salt, hash.slice(0, 41)), /hash is not valid base64/],
    ['a huge salt', phc('m=64,t=1,p=1', b64(2000)), /argon2 salt must be 8 to 1024 bytes, found 2000/],
    ['a short salt', phc('m=64,t=1,p=1', b64(4)), /argon2 salt must be 8 to 1024 bytes, found 4/],
    ['a short hash', phc('m=64,t=1,p=1', salt, b64(8)), /argon2 hash must be 16 to 1024 bytes, found 8/],
    ['no hash', `$argon2id$v=19$m=64,t=1,p=1$${salt}`, /malformed \$argon2id\$ hash/],
    ['only the prefix', '$argon2id$', /malformed \$argon2id\$ hash/],
  ];
  for (const [name, bad, expected] of cases) {
    const file = join(dir, name.replace(/\W+/g, '-'));
    writeFileSync(file, `good:${good}\nbad:${bad}\n`);
    const pw = await loadPasswordFile(file);
    t.same(pw.users(), ['good'], `${name}: only the good user is kept`);
    const message = pw.skipped.map(describeSkippedLine).join('\n');
    t.ok(message.startsWith(`${file}:2: user "bad" removed: `), `${name}: names file, line and user`);
    t.match(message, expected, `${name}: ${message.slice(file.length)}`);
    t.notOk(message.includes(hash.slice(0, 16)) || message.includes(salt), `${name}: no hash or salt in the message`);
    t.equal(await pw.verify('bad', Buffer.from('pw')), 'unknown-user', `${name}: the user is gone (nothing derived with its parameters)`);
    t.equal(await pw.verify('good', Buffer.from('pw')), 'ok', `${name}: the good user still logs in`);
  }
});

t.test('argon2id runs off the event loop, and unknown users cost an argon2id derivation too', async (t) => {
  const dir = tempDir();
  const file = join(dir, 'passwd');
  writeFileSync(file, `a:${await argonLine('a')}\nb:${await argonLine('b')}\n`);
  const pw = await loadPasswordFile(file);
  await pw.verify('a', Buffer.from('a')); // the worker thread starts and its wasm memory grows once
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 2);
  const known: number[] = [];
  const unknown: number[] = [];
  const ticksDuring: number[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      let t0 = performance.now();
      const before = ticks;
      t.equal(await pw.verify('a', Buffer.from('a')), 'ok');
      known.push(performance.now() - t0);
      ticksDuring.push(ticks - before);
      t0 = performance.now();
      t.equal(await pw.verify('nobody', Buffer.from('a')), 'unknown-user');
      unknown.push(performance.now() - t0);
    }
  } finally {
    clearInterval(ticker);
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[1];
  t.comment(
    `argon2id verification at Mosquitto 2.1's parameters (m=47104 KiB, t=1, p=1): known ${known.map((x) => x.toFixed(0)).join('/')} ms, unknown ${unknown.map((x) => x.toFixed(0)).join('/')} ms; 2 ms timer ticks during each: ${ticksDuring.join('/')}`,
  );
  // on the event loop a verification would let no timer fire at all
  t.ok(Math.min(...ticksDuring) >= 3, `timers kept firing during every verification (${ticksDuring.join('/')} ticks)`);
  t.ok(median(unknown) > median(known) / 3, 'an unknown user takes about as long as a known one (the decoy is argon2id too)');
  t.equal(await pw.verify('a', Buffer.alloc(0)), 'bad-password', 'an empty password is refused (hash-wasm cannot derive it)');
  t.equal(await pw.verify('nobody', Buffer.alloc(0)), 'unknown-user');
});

t.test(
  'the broker: 2.1 lines log in with real clients, a broken line removes one user with one log line (same file on Mosquitto 2.0.11)',
  async (t) => {
    const dir = tempDir();
    const file = join(dir, 'passwd');
    // users Mosquitto 2.0 reads, one it cannot (12-byte-salt rule broken: 6 bytes), and Mosquitto 2.1's two formats
    const v20 = pbkdf2Line('v20 pw', 101, 12);
    const [, , it, salt, hash] = v20.split('$');
    writeFileSync(
      file,
      `v20:${v20}\nbroken:$7$${it}$${salt.slice(0, 8)}$${hash}\npbkdf2-21:${pbkdf2Line('p21 pw')}\nargon-21:${await argonLine('a21 pw')}\n`,
    );
    const mqprobe = await startTestBroker(t, `listener 0 127.0.0.1\nallow_anonymous false\npassword_file ${file}\n`, { dir });
    const mosquitto = await startMosquitto(t, dir, `allow_anonymous false\npassword_file ${file}\n`, [file]);
    const pub = async (port: number, user: string, password: string) =>
      (await run(t, 'mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-u', user, '-P', password, '-t', 't', '-m', 'x', '-q', '1']))
        .code === 0;
    const cases: [string, string, boolean, boolean][] = [
      // user, password, mqprobe lets in, Mosquitto 2.0.11 lets in
      ['v20', 'v20 pw', true, true],
      ['v20', 'wrong', false, false],
      ['broken', 'v20 pw', false, false],
      ['pbkdf2-21', 'p21 pw', true, false], // 2.0 reads only 12-byte salts (docs/security.md)
      ['pbkdf2-21', 'wrong', false, false],
      ['argon-21', 'a21 pw', true, false], // 2.0 has no argon2id
      ['argon-21', 'wrong', false, false],
    ];
    for (const [user, password, onMqprobe, onMosquitto] of cases) {
      t.equal(await pub(mqprobe.port, user, password), onMqprobe, `mqprobe: ${user} / ${password} ${onMqprobe ? 'in' : 'refused'}`);
      t.equal(
        await pub(mosquitto.port, user, password),
        onMosquitto,
        `Mosquitto 2.0.11: ${user} / ${password} ${onMosquitto ? 'in' : 'refused'}`,
      );
    }
    const log = readFileSync(mqprobe.logFile, 'utf8');
    const lines = log.split('\n').filter((l) => l.includes(`${file}:`));
    t.equal(lines.length, 1, 'mqprobe logs one line');
    t.match(lines[0], /"level":50.*passwd:2: user \\"broken\\" removed: salt must be 12 or 64 bytes, found 6/);
    t.notOk(log.includes(hash.slice(0, 20)) || log.includes(salt.slice(0, 8)), 'no hash or salt in the log');
    t.match(mosquitto.output(), /Unable to decode password salt for user broken, removing entry/, 'Mosquitto 2.0.11 removes the same user');

    writeFileSync(file, `v20:${v20}\nlater:$argon2id$v=19$m=4194304,t=1,p=1$${salt}$${hash.replace(/=+$/, '')}\n`);
    await mqprobe.broker.reload();
    const reloaded = readFileSync(mqprobe.logFile, 'utf8')
      .split('\n')
      .filter((l) => l.includes(`${file}:`));
    t.equal(reloaded.length, 2, 'a reload logs its own line');
    t.match(reloaded[1], /passwd:2: user \\"later\\" removed: argon2 memory m=4194304 KiB is above/);
    t.equal(await pub(mqprobe.port, 'v20', 'v20 pw'), true, 'v20 still logs in after the reload');
    t.equal(await pub(mqprobe.port, 'argon-21', 'a21 pw'), false, 'a user no longer in the file is refused');
  },
);
