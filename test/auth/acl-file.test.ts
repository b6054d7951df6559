import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../../broker/config/errors.js';
import { loadAclFile, topicMatchesFilter, type AclAccess, type AclFile, type AclSubject } from '../../broker/auth/acl-file.js';
import { filterContains, filtersOverlap, isValidFilter } from '../../broker/auth/topic-filter.js';
import { tempDir } from '../helpers/tmp.js';
import { fixture } from '../helpers/paths.js';
import { mosquittoRefuses } from './peers.js';

function writeAcl(text: string | Buffer): string {
  const file = join(tempDir(), 'acl');
  writeFileSync(file, text);
  return file;
}

async function aclFrom(text: string): Promise<AclFile> {
  return loadAclFile(writeAcl(text));
}

type Row = [user: string | undefined, clientId: string, topic: string, access: AclAccess, allowed: boolean];

function table(t: Test, acl: AclFile, rows: Row[]) {
  for (const [username, clientId, topic, access, allowed] of rows) {
    const who: AclSubject = username === undefined ? { clientId } : { username, clientId };
    t.equal(
      acl.check(who, topic, access),
      allowed,
      `${username ?? '(anonymous)'}/${clientId} ${access} ${topic} → ${allowed ? 'allowed' : 'denied'}`,
    );
  }
}

t.test('topicMatchesFilter: the cases of Mosquitto 2.0.11 test/unit/util_topic_test.c', async (t) => {
  const match: [string, string][] = [
    ['foo/#', 'foo/'],
    ['foo/#', 'foo'],
    ['foo//bar', 'foo//bar'],
    ['foo//+', 'foo//bar'],
    ['foo/+/+/baz', 'foo///baz'],
    ['foo/bar/+', 'foo/bar/'],
    ['foo/bar', 'foo/bar'],
    ['foo/+', 'foo/bar'],
    ['foo/+/baz', 'foo/bar/baz'],
    ['A/B/+/#', 'A/B/B/C'],
    ['foo/+/#', 'foo/bar/baz'],
    ['foo/+/#', 'foo/bar'],
    ['#', 'foo/bar/baz'],
    ['#', '/foo/bar'],
    ['/#', '/foo/bar'],
    ['$SYS/#', '$SYS/broker/uptime'],
    ['$SYS/+/uptime', '$SYS/broker/uptime'],
    ['+', 'foo'],
    ['+/+', '/'],
  ];
  const noMatch: [string, string][] = [
    ['test/6/#', 'test/3'],
    ['foo/bar', 'foo'],
    ['foo/+', 'foo/bar/baz'],
    ['foo/+/baz', 'foo/bar/bar'],
    ['foo/+/#', 'fo2/bar/baz'],
    ['/#', 'foo/bar'],
    ['#', '$SYS/bar'],
    ['$BOB/bar', '$SYS/bar'],
    ['+/broker/uptime', '$SYS/broker/uptime'],
    ['foo/+/#', 'foo'],
    // invalid filters or wildcards in the topic: never a match
    ['+foo', '+foo'],
    ['fo+o', 'fo+o'],
    ['foo+', 'foo+'],
    ['foo/+bar', 'foo/abar'],
    ['#foo', '#foo'],
    ['foo#', 'foo'],
    ['foo/#/bar', 'foo/x/bar'],
    ['foo/#a', 'foo'],
    ['foo/+', 'foo/+'],
    ['foo/#', 'foo/+'],
    ['foo/#', 'foo/bar/#'],
    ['', 'foo'],
    ['foo', ''],
  ];
  for (const [f, topic] of match) t.ok(topicMatchesFilter(f, topic), `${f} matches ${topic}`);
  for (const [f, topic] of noMatch) t.notOk(topicMatchesFilter(f, topic), `${f} does not match ${JSON.stringify(topic)}`);
  t.notOk(isValidFilter('a/'.repeat(201) + 'b'), 'more than 200 levels separators is invalid, as in Mosquitto');
  t.notOk(isValidFilter('x'.repeat(65_536)), 'longer than 65535 bytes is invalid');
});

t.test('filterContains: mosquitto_sub_matches_acl cases (Mosquitto develop test/unit/libcommon/topic_test.c)', async (t) => {
  const rows: [string, string, boolean][] = [
    ['$SYS/#', '$SYS/broker/#', true],
    ['$SYS/#', '$SYS/+/#', true],
    ['$SYS/#', '$SYS', true],
    ['$SYS/+', '$SYS/#', false],
    ['$SYS/+/a', '$SYS/a/+', false],
    ['$SYS/+', '$SYS/+/a', false],
    ['$SYS/broker/uptime', '$SYS/broker/#', false],
    ['#', '$SYS/broker/#', false],
    ['#', 'a/b', true],
    ['a/#', 'a', true],
    ['a/+/#', 'a/b', true],
    ['a/+/#', 'a', false],
    ['+/+', 'a/+', true],
    ['a/+', '+/+', false],
  ];
  for (const [outer, inner, want] of rows)
    t.equal(filterContains(outer, inner), want, `${outer} ${want ? 'contains' : 'does not contain'} ${inner}`);
  const overlaps: [string, string, boolean][] = [
    ['#', 'a/b', true],
    ['a/#', 'a', true],
    ['+/b', 'a/+', true],
    ['a/+', 'b/+', false],
    ['a/+/c', 'a/b', false],
    ['#', '$SYS/#', false],
    ['$SYS/#', '$SYS/broker/+', true],
    ['+/x', '$SYS/x', false],
    ['a/b/#', 'a/+/c/d', true],
    ['a//b', 'a/+/b', true],
  ];
  for (const [a, b, want] of overlaps) t.equal(filtersOverlap(a, b), want, `${a} ${want ? 'overlaps' : 'does not overlap'} ${b}`);
});

t.test("Mosquitto's aclfile.example: anonymous section, user section, pattern for everyone", async (t) => {
  const acl = await loadAclFile(fixture('mosquitto', 'aclfile.example'));
  table(t, acl, [
    [undefined, 'anon', '$SYS/broker/uptime', 'read', true],
    [undefined, 'anon', '$SYS/broker/uptime', 'write', false],
    [undefined, 'anon', '$SYS/#', 'subscribe', true],
    [undefined, 'anon', '#', 'subscribe', false], // `#` never delivers $SYS topics and nothing else is readable
    [undefined, 'anon', 'foo/bar', 'read', false],
    [undefined, 'anon', '$SYS/broker/connection/anon/state', 'write', true],
    [undefined, 'anon', '$SYS/broker/connection/other/state', 'write', false],
    [undefined, 'anon', '$SYS/broker/connection/anon/state', 'read', true], // read comes from `topic read $SYS/#`
    ['roger', 'r1', 'foo/bar', 'read', true],
    ['roger', 'r1', 'foo/bar', 'write', true],
    ['roger', 'r1', 'foo/bar', 'subscribe', true],
    ['roger', 'r1', 'foo/+', 'subscribe', true],
    ['roger', 'r1', 'foo/baz', 'read', false],
    ['roger', 'r1', '$SYS/broker/uptime', 'read', false], // the anonymous lines are not roger's
    ['roger', 'r1', '$SYS/broker/connection/r1/state', 'write', true],
    ['roger', 'r1', '$SYS/broker/connection/r1/state', 'read', false],
    ['alice', 'a1', 'foo/bar', 'read', false], // a user without a section gets only the patterns
    ['alice', 'a1', '$SYS/broker/connection/a1/state', 'write', true],
    ['alice', 'a1', '$SYS/broker/uptime', 'read', false],
    ['', 'e1', '$SYS/broker/uptime', 'read', false], // an empty username is a username, not anonymous
  ]);
});

t.test('users, patterns, deny and the order Mosquitto checks them in', async (t) => {
  const acl = await aclFrom(`
# anonymous
topic read public/#
topic deny public/private

user alice
topic readwrite alice/#
topic read shared/#
topic deny shared/secret
topic write drop/alice

user bob
topic read shared/+/news

# a second section for alice adds to the first
user alice
topic read extra/alice

user with space
topic read space/#

pattern readwrite devices/%c/#
pattern read users/%u/inbox
pattern deny devices/%c/locked
pattern read mixed/%u/%c
pattern deny shared/secret/%u
`);
  table(t, acl, [
    [undefined, 'anon', 'public/news', 'read', true],
    [undefined, 'anon', 'public/news', 'write', false],
    [undefined, 'anon', 'public/private', 'read', false],
    [undefined, 'anon', 'devices/anon/x', 'write', true],
    [undefined, 'anon', 'users/anon/inbox', 'read', false], // %u never matches without a username
    [undefined, 'anon', 'mixed//anon', 'read', false],
    ['alice', 'a1', 'alice/x/y', 'write', true],
    ['alice', 'a1', 'alice', 'read', true], // alice/# covers alice
    ['alice', 'a1', 'shared/news', 'read', true],
    ['alice', 'a1', 'shared/news', 'write', false],
    ['alice', 'a1', 'shared/secret', 'read', false], // deny wins over the broader read
    ['alice', 'a1', 'shared/secret/alice', 'read', true], // own grant wins over a pattern deny
    ['alice', 'a1', 'drop/alice', 'write', true],
    ['alice', 'a1', 'drop/alice', 'read', false],
    ['alice', 'a1', 'extra/alice', 'read', true],
    ['alice', 'a1', 'public/news', 'read', false], // anonymous lines are not alice's
    ['alice', 'a1', 'users/alice/inbox', 'read', true],
    ['alice', 'a1', 'users/bob/inbox', 'read', false],
    ['alice', 'a1', 'devices/a1/t', 'write', true],
    ['alice', 'a1', 'devices/a1/locked', 'write', false], // pattern deny wins over pattern grant
    ['alice', 'a1', 'devices/a2/t', 'write', false],
    ['alice', 'a1', 'mixed/alice/a1', 'read', true],
    ['bob', 'b1', 'shared/x/news', 'read', true],
    ['bob', 'b1', 'shared/news', 'read', false],
    ['bob', 'b1', 'shared/secret/bob', 'read', false],
    ['with space', 'w1', 'space/x', 'read', true],
    ['carol', 'c1', 'devices/c1/t', 'read', true],
    ['carol', 'c1', 'users/carol/inbox', 'read', true],
    ['carol', 'c1', 'users/carol/inbox', 'write', false],
    ['carol', 'c1', 'shared/news', 'read', false],
    // wildcards in names: the patterns refuse them (Mosquitto's "dangerous username/client id")
    ['carol', 'c+1', 'devices/c+1/t', 'read', false],
    ['carol', '#', 'devices/x/t', 'read', false],
    ['car+ol', 'c1', 'devices/c1/t', 'read', false],
    ['alice', 'a#', 'alice/x', 'read', true], // own lines are checked before the dangerous-name rule
    // '/' in names: pattern grants never match, pattern denies still do (mqprobe hardening)
    ['carol/x', 'c1', 'users/carol/x/inbox', 'read', false],
    ['carol', 'c1/x', 'devices/c1/x/t', 'read', false],
    ['carol', 'c1/locked', 'devices/c1/locked/x', 'read', false],
    // malformed topics are never allowed
    ['alice', 'a1', 'alice/+', 'read', false],
    ['alice', 'a1', 'alice/#', 'write', false],
    ['alice', 'a1', '', 'read', false],
  ]);
});

t.test('subscriptions: refused only when nothing could ever be delivered', async (t) => {
  const acl = await aclFrom(`
user alice
topic readwrite alice/#
topic read shared/#
topic deny shared/secret
topic deny shared/vault/#
topic write drop/alice
topic read $SYS/broker/#

user sys
topic read $SYS/#

pattern read devices/%c/#
`);
  table(t, acl, [
    ['alice', 'a1', '#', 'subscribe', true], // Mosquitto grants `#` and delivers the readable part
    ['alice', 'a1', '+/news', 'subscribe', true],
    ['alice', 'a1', 'shared/#', 'subscribe', true],
    ['alice', 'a1', 'shared/secret', 'subscribe', false], // fully denied
    ['alice', 'a1', 'shared/vault/+/x', 'subscribe', false],
    ['alice', 'a1', 'shared/+', 'subscribe', true],
    ['alice', 'a1', 'drop/alice', 'subscribe', false], // write-only: nothing to read
    ['alice', 'a1', 'other/#', 'subscribe', false],
    ['alice', 'a1', '$SYS/#', 'subscribe', true],
    ['alice', 'a1', '$SYS/broker/+', 'subscribe', true],
    ['alice', 'a1', '+/broker/uptime', 'subscribe', true], // alice/broker/uptime
    ['sys', 's+1', '+/broker/uptime', 'subscribe', false], // a leading wildcard never reaches $SYS
    ['sys', 's+1', '#', 'subscribe', false],
    ['sys', 's+1', '$SYS/broker/uptime', 'subscribe', true],
    ['alice', 'a1', 'devices/a1/#', 'subscribe', true],
    ['alice', 'a1', 'devices/+/temp', 'subscribe', true],
    ['alice', 'a1', 'devices/a2/temp', 'subscribe', false],
    ['alice', 'a1', '$share/group/shared/news', 'subscribe', true],
    ['alice', 'a1', '$share/group/shared/secret', 'subscribe', false],
    ['alice', 'a1', 'alice/#/x', 'subscribe', false], // invalid filter
    ['bob', 'b1', '#', 'subscribe', true], // devices/b1/# through the pattern
    ['bob', 'b1', 'alice/#', 'subscribe', false],
    ['bob', 'b#', 'devices/b#', 'subscribe', false], // invalid filter and dangerous id
    ['bob', 'b#', 'devices/+/x', 'subscribe', false], // dangerous id: patterns refuse
  ]);
});

t.test('grammar: what Mosquitto accepts is accepted', async (t) => {
  const acl = await aclFrom(
    '\ttopic foo/bar\n  user   spaced name  \r\ntopic   deny   a b/c  \n  # indented comment\n\npattern write x/%c\n',
  );
  table(t, acl, [
    [undefined, 'c', 'foo/bar', 'read', true], // no access word: readwrite
    [undefined, 'c', 'foo/bar', 'write', true],
    ['spaced name', 'c', 'a b/c', 'read', false],
    [undefined, 'c', 'x/c', 'write', true],
  ]);
  const quirk = await aclFrom('topic read\n');
  table(t, quirk, [[undefined, 'c', 'read', 'write', true]]); // Mosquitto reads `topic read` as readwrite on topic "read"
  const empty = await aclFrom('# nothing\n');
  table(t, empty, [
    [undefined, 'c', 'a', 'read', false],
    ['u', 'c', 'a', 'subscribe', false],
  ]); // an empty ACL denies everything
});

t.test('hostile ACL files: an error naming file and line', async (t) => {
  const cases: [string, string | Buffer, RegExp][] = [
    ['bad access', 'topic readonly foo\n', /:1: invalid access "readonly"/],
    ['bad filter', '\nuser u\ntopic read a/#/b\n', /:3: invalid topic filter "a\/#\/b"/],
    ['plus inside a level', 'pattern read a/b+\n', /:1: invalid topic filter/],
    ['topic without filter', 'topic\n', /:1: topic needs a topic filter/],
    ['user without name', 'user   \n', /:1: user needs a username/],
    ['unknown keyword', 'topic read a\nallow all\n', /:2: unknown keyword "allow"/],
    ['huge line', `topic read ${'a'.repeat(70_000)}\n`, /:1: line is longer than 65599 bytes/],
    ['binary', Buffer.from([0x74, 0x6f, 0x70, 0x69, 0x63, 0x20, 0xc0, 0xaf, 0x0a]), /:1: line is not valid UTF-8/],
    ['NUL', 'topic read a\0b\n', /:1: line contains a NUL byte/],
    ['random bytes', Buffer.from(randomBytes(2048).map((b) => (b === 10 || b === 0 ? 0xfe : b))), /:1: line is not valid UTF-8/],
  ];
  for (const [name, content, expected] of cases) {
    const file = writeAcl(content);
    const err = await loadAclFile(file).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.type(err, ConfigError, name);
    t.match((err as Error | undefined)?.message, expected, name);
    t.ok((err as Error | undefined)?.message.startsWith(`${file}:`), `${name}: names the file`);
  }
  await t.rejects(loadAclFile('/nonexistent/acl'), { message: '/nonexistent/acl: cannot read acl_file: ENOENT' });
  await t.rejects(loadAclFile('/dev/zero'), /acl_file is larger than 16777216 bytes/);
});

t.test('the real Mosquitto refuses the same broken ACL files', async (t) => {
  const dir = tempDir();
  for (const [i, text] of ['topic readonly foo\n', 'topic read a/#/b\n', 'allow all\n', 'user\n'].entries()) {
    const file = join(dir, `acl${i}`);
    writeFileSync(file, text);
    await t.rejects(loadAclFile(file), ConfigError, `mqprobe refuses ${JSON.stringify(text)}`);
    const r = await mosquittoRefuses(t, dir, `allow_anonymous true\nacl_file ${file}\n`, [file]);
    t.not(r.code, 0, `mosquitto refuses ${JSON.stringify(text)}: ${r.stderr.trim().split('\n')[0]}`);
  }
});
