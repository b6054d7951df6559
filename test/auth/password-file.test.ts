import t from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdirSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../../broker/config/errors.js';
import { describeSkippedLine, loadPasswordFile } from '../../broker/auth/password-file.js';
import { hashPassword, MAX_ITERATIONS } from '../../broker/auth/password-hash.js';
import { tempDir } from '../helpers/tmp.js';
import { fixture } from '../helpers/paths.js';
import { fixturePasswords, run } from './peers.js';

const PASSWORDS = fixturePasswords();
const ALICE_HASH = '$7$101$GRoFZ0tPwcpD90Qm$JxvXkq5rFXsyy9eqDp6+BHNOLwv5G4HTpiRTsZegOmhEVn6DQ/hD4MLTh6AEqjke0fLuMs9zdbSBkXuwMydGXA==';

t.test('every fixture user verifies with the password from PASSWORDS.md', async (t) => {
  t.same(Object.keys(PASSWORDS).sort(), ['alice', 'bob', 'legacy', 'sensor-01'], 'PASSWORDS.md parsed');
  const pw = await loadPasswordFile(fixture('mosquitto', 'passwd'));
  t.same(pw.users().sort(), ['alice', 'bob', 'legacy', 'sensor-01']);
  t.equal(pw.path, fixture('mosquitto', 'passwd'));
  for (const [user, password] of Object.entries(PASSWORDS)) {
    t.ok(pw.has(user), `has ${user}`);
    t.equal(await pw.verify(user, Buffer.from(password)), 'ok', `${user} with their password`);
  }
});

t.test('wrong passwords, missing passwords and unknown users are refused', async (t) => {
  const pw = await loadPasswordFile(fixture('mosquitto', 'passwd'));
  const wrong: [string, string][] = [
    ['alice', PASSWORDS.bob],
    ['alice', 'alice-secret '],
    ['alice', 'Alice-secret'],
    ['alice', ''],
    ['bob', 'b0b pass with space'],
    ['sensor-01', 'Tr1cky'],
    ['legacy', 'legacy-pass\0'],
    ['legacy', PASSWORDS.alice],
  ];
  for (const [user, password] of wrong)
    t.equal(await pw.verify(user, Buffer.from(password)), 'bad-password', `${user} / ${JSON.stringify(password)}`);
  for (const user of Object.keys(PASSWORDS)) t.equal(await pw.verify(user, undefined), 'bad-password', `${user} without a password`);
  for (const user of ['mallory', 'ALICE', 'alice ', ' alice', '', 'alice:x', '#alice']) {
    t.notOk(pw.has(user));
    t.equal(await pw.verify(user, Buffer.from(PASSWORDS.alice)), 'unknown-user', `unknown user ${JSON.stringify(user)}`);
    t.equal(await pw.verify(user, undefined), 'unknown-user', `unknown user ${JSON.stringify(user)} without a password`);
  }
});

t.test('hashPassword writes $7$ (and $6$) lines that verify', async (t) => {
  const dir = tempDir();
  const seven = await hashPassword('pässwörd ✓');
  t.match(seven, /^\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$/, 'default: 101 iterations, 12-byte salt, 64-byte hash');
  const many = await hashPassword('x', 5000);
  t.match(many, /^\$7\$5000\$/);
  const six = await hashPassword('legacy', 101, 'sha512');
  t.match(six, /^\$6\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$/);
  t.not(await hashPassword('x'), await hashPassword('x'), 'a fresh salt every time');
  writeFileSync(join(dir, 'p'), `u1:${seven}\nu2:${many}\nu3:${six}\n`);
  const pw = await loadPasswordFile(join(dir, 'p'));
  t.equal(await pw.verify('u1', Buffer.from('pässwörd ✓')), 'ok');
  t.equal(await pw.verify('u2', Buffer.from('x')), 'ok');
  t.equal(await pw.verify('u3', Buffer.from('legacy')), 'ok');
  t.equal(await pw.verify('u3', Buffer.from('legacy2')), 'bad-password');
  for (const bad of [0, -1, 1.5, MAX_ITERATIONS + 1, Number.NaN]) await t.rejects(hashPassword('x', bad), RangeError, `iterations ${bad}`);
});

t.test('comments, blank lines, CRLF and blanks around fields are read as Mosquitto reads them', async (t) => {
  const dir = tempDir();
  const file = join(dir, 'p');
  writeFileSync(file, `# a comment: with a colon\r\n\r\n   \r\n  alice :  ${ALICE_HASH}  \r\n\tbob\t:${await hashPassword('b')}\r\n`);
  const pw = await loadPasswordFile(file);
  t.same(pw.users(), ['alice', 'bob']);
  t.equal(await pw.verify('alice', Buffer.from(PASSWORDS.alice)), 'ok');
  t.equal(await pw.verify('bob', Buffer.from('b')), 'ok');
  writeFileSync(file, '');
  t.same((await loadPasswordFile(file)).users(), [], 'an empty file has no users');
});

/** Loads a file and returns what went wrong: the ConfigError's message, or undefined when it loaded. */
async function loadError(file: string): Promise<string | undefined> {
  return loadPasswordFile(file).then(
    () => undefined,
    (e: unknown) => {
      if (!(e instanceof ConfigError)) throw e;
      return e.message;
    },
  );
}

t.test('an unreadable line removes that user only, with one line naming file, line and reason (never the hash)', async (t) => {
  const dir = tempDir();
  const [salt, hash] = ALICE_HASH.split('$').slice(3);
  const cases: [string, string, RegExp][] = [
    ['truncated hash', `alice:${ALICE_HASH.slice(0, 60)}`, /user "alice" removed: hash must be 64 bytes, found 27/],
    ['hash cut at a $', `alice:$7$101$${salt}$`, /user "alice" removed: malformed \$7\$ hash/],
    ['no hash part', `alice:$7$101$${salt}`, /user "alice" removed: malformed \$7\$ hash/],
    ['short salt', `alice:$7$101$${salt.slice(0, 8)}$${hash}`, /salt must be 12 or 64 bytes, found 6/],
    [
      'truncated base64 (a dangling character)',
      `alice:$7$101$${salt}$${hash.slice(0, 85)}`,
      /malformed \$7\$ hash \(hash is not valid base64\)/,
    ],
    ['zero iterations', `alice:$7$0$${salt}$${hash}`, /iteration count must be at least 1/],
    ['absurd iterations', `alice:$7$99999999999999999999999$${salt}$${hash}`, new RegExp(`above mqprobe's limit of ${MAX_ITERATIONS}`)],
    ['iterations just above the cap', `alice:$7$${MAX_ITERATIONS + 1}$${salt}$${hash}`, /above mqprobe's limit/],
    ['negative iterations', `alice:$7$-5$${salt}$${hash}`, /malformed \$7\$ hash/],
    ['not base64', `alice:$7$101$${salt}$${'*'.repeat(88)}`, /malformed \$7\$ hash/],
    ['$6$ with a bad hash', `legacy:$6$${salt}$${hash.slice(0, 40)}`, /user "legacy" removed: hash must be 64 bytes/],
    ['a huge salt', `alice:$7$101$${Buffer.alloc(1000, 7).toString('base64')}$${hash}`, /salt must be 12 or 64 bytes, found 1000/],
    ['plain-text password', 'alice:hunter2-secret', /user "alice" removed: password is not hashed .*mqprobe passwd -U/],
    ['md5-crypt hash', 'alice:$1$saltsalt$qjXhJx2f0pD3yG4U3vB2e/', /user "alice" removed: unsupported hash type/],
    ['extra field', `alice:${ALICE_HASH}:extra`, /user "alice" removed: malformed \$7\$ hash/],
    ['empty hash', 'alice:', /user "alice" removed: password is not hashed/],
    ['no colon', 'hunter2-secret', /line ignored: expected user:hash/],
    ['empty username', `:${ALICE_HASH}`, /line ignored: empty username/],
    ['huge username', `${'u'.repeat(70_000)}:${ALICE_HASH}`, /line ignored: username is longer than 65535 bytes/],
  ];
  for (const [name, bad, expected] of cases) {
    const file = join(dir, name.replace(/\W+/g, '-'));
    writeFileSync(file, `# one good user, then the bad line\nbob:${ALICE_HASH}\n${bad}\n`);
    const pw = await loadPasswordFile(file);
    t.same(pw.users(), ['bob'], `${name}: the other user is kept`);
    t.equal(await pw.verify('bob', Buffer.from(PASSWORDS.alice)), 'ok', `${name}: and still logs in`);
    t.equal(pw.skipped.length, 1, `${name}: one skipped line`);
    const message = describeSkippedLine(pw.skipped[0]);
    t.match(message, expected, `${name}: ${message.slice(0, 200)}`);
    t.ok(message.startsWith(`${file}:3: `), `${name}: names the file and line`);
    t.notOk(
      message.includes(hash.slice(0, 20)) || message.includes(salt) || message.includes('hunter2'),
      `${name}: no hash, salt or password in the message`,
    );
    if (pw.skipped[0].user)
      t.equal(await pw.verify(pw.skipped[0].user, Buffer.from(PASSWORDS.alice)), 'unknown-user', `${name}: the removed user cannot log in`);
  }
});

t.test('what is not a password file, or names a user twice, stops the load naming file and line', async (t) => {
  const dir = tempDir();
  const cases: [string, string | Buffer, RegExp][] = [
    ['duplicate user', `alice:${ALICE_HASH}\nbob:${ALICE_HASH}\n alice :${ALICE_HASH}\n`, /:3: user "alice" is already defined on line 1/],
    ['duplicate of a removed user', `alice:plain\nalice:${ALICE_HASH}\n`, /:2: user "alice" is already defined on line 1/],
    ['huge line', `alice:${'A'.repeat(200_000)}\n`, /:1: line is longer than 131070 bytes/],
    ['NUL byte', `alice:${ALICE_HASH}\0\n`, /:1: line contains a NUL byte/],
    [
      'binary garbage',
      Buffer.concat([Buffer.from(`alice:${ALICE_HASH}\n`), Buffer.from([0xff, 0xfe, 0x80, 0x41, 0x3a, 0xc3])]),
      /:2: line is not valid UTF-8/,
    ],
    ['random bytes', Buffer.from(randomBytes(4096).map((b) => (b === 0 || b === 10 ? 0xff : b))), /:1: line is not valid UTF-8/],
  ];
  for (const [name, content, expected] of cases) {
    const file = join(dir, name.replace(/\W+/g, '-'));
    writeFileSync(file, content);
    const message = (await loadError(file)) ?? '';
    t.match(message, expected, `${name}: ${message}`);
    t.ok(message.startsWith(file + ':'), `${name}: names the file and line`);
    t.notOk(message.includes(ALICE_HASH.slice(20, 40)), `${name}: no hash in the message`);
  }
});

t.test('missing, oversized and non-regular files', async (t) => {
  const dir = tempDir();
  await t.rejects(loadPasswordFile(join(dir, 'nope')), { message: `${join(dir, 'nope')}: cannot read password file: ENOENT` });
  mkdirSync(join(dir, 'folder'));
  await t.rejects(loadPasswordFile(join(dir, 'folder')), /cannot read password file: EISDIR/);
  const big = join(dir, 'big');
  writeFileSync(big, '');
  truncateSync(big, 65 * 1024 * 1024); // sparse: costs no disk
  await t.rejects(loadPasswordFile(big), { message: `${big}: password file is larger than 67108864 bytes` });
  await t.rejects(loadPasswordFile('/dev/zero'), /password file is larger than/, 'an endless device stops at the size limit');
});

t.test('files written by the real mosquitto_passwd verify here', async (t) => {
  const dir = tempDir();
  const file = join(dir, 'passwd');
  const users: [string, string[], string][] = [
    ['pbkdf2-user', [], 'first secret'],
    ['sha512-user', ['-H', 'sha512'], 'second: secret'],
    ['many-iterations', ['-I', '20000'], 'third/secret'],
    ['ünïcode', [], 'пароль ✓'],
  ];
  for (const [i, [user, flags, password]] of users.entries()) {
    const r = await run(t, 'mosquitto_passwd', [...flags, ...(i === 0 ? ['-c'] : []), '-b', file, user, password]);
    t.equal(r.code, 0, `mosquitto_passwd wrote ${user}: ${r.stderr}`);
  }
  const pw = await loadPasswordFile(file);
  t.same(
    pw.users(),
    users.map(([u]) => u),
  );
  for (const [user, , password] of users) {
    t.equal(await pw.verify(user, Buffer.from(password)), 'ok', `${user} verifies`);
    t.equal(await pw.verify(user, Buffer.from(password + 'x')), 'bad-password', `${user} with a wrong password`);
  }
});
