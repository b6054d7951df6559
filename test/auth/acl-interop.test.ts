import t, { type Test } from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hashPassword } from '../../broker/auth/password-hash.js';
import { loadAclFile, topicMatchesFilter, type AclSubject } from '../../broker/auth/acl-file.js';
import { startTestBroker, tempDir } from '../helpers/broker.js';
import { run, startMosquitto } from './peers.js';

/**
 * One ACL file, loaded by the real Mosquitto 2.0 and by mqprobe, driven by the real
 * mosquitto_pub/mosquitto_sub: what each subscriber receives and which publishes land must
 * be the same on both brokers and equal what AclFile.check predicts.
 */
const ACL = `# anonymous
topic read public/#
topic write public/w

user admin
topic readwrite #

user alice
topic readwrite alice/#
topic read shared/#
topic deny shared/secret
topic write drop/alice

user bob
topic read shared/+/news

pattern readwrite devices/%c/#
pattern read users/%u/inbox
pattern deny devices/%c/locked
`;
const USERS: Record<string, string> = { admin: 'admin pw', alice: 'alice pw', bob: 'bob pw', carol: 'carol pw' };
const SEEDS = [
  'shared/news',
  'shared/secret',
  'shared/x/news',
  'alice/private',
  'public/info',
  'devices/dev-a/temp',
  'devices/dev-a/locked',
  'devices/dev-c/temp',
  'users/carol/inbox',
  'users/alice/inbox',
];
type Case = [user: string | undefined, clientId: string, topic: string];
const WRITES: Case[] = [
  ['alice', 'aw', 'alice/w1'],
  ['alice', 'aw', 'shared/w2'],
  ['alice', 'aw', 'drop/alice'],
  ['bob', 'bw', 'shared/y/news'],
  ['carol', 'dev-c', 'devices/dev-c/w'],
  ['carol', 'dev-c', 'devices/other/w'],
  ['carol', 'dev-c', 'devices/dev-c/locked'],
  [undefined, 'anon-w', 'public/w'],
  [undefined, 'anon-w', 'other/w'],
];
// client ids are unique: the subscribers run at the same time and a second session would take over the first
const READS: Case[] = [
  ['alice', 'dev-a', '#'],
  ['alice', 'a3', 'shared/secret'],
  ['alice', 'a2', 'drop/#'],
  ['bob', 'bob-1', '#'],
  ['bob', 'bob-2', 'shared/news'],
  ['carol', 'dev-c', '#'],
  ['carol', 'x#y', 'users/#'],
  [undefined, 'anon-1', '#'],
  [undefined, 'anon-2', 'public/+'],
  ['admin', 'adm', 'devices/+/locked'],
];

interface Observed {
  pubCodes: (number | null)[];
  landed: string[];
  received: string[][];
  granted: (number | undefined)[];
}

function login(user: string | undefined, clientId: string): string[] {
  return [...(user ? ['-u', user, '-P', USERS[user]] : []), '-i', clientId];
}

/** Waits for retained messages for one second and returns the topics, and the SUBACK code. */
async function subscribe(
  t: Test,
  port: number,
  user: string | undefined,
  clientId: string,
  filter: string,
): Promise<{ topics: string[]; granted?: number }> {
  const r = await run(t, 'mosquitto_sub', [
    '-h',
    '127.0.0.1',
    '-p',
    String(port),
    ...login(user, clientId),
    '-t',
    filter,
    '-q',
    '1',
    '-v',
    '-d',
    '-W',
    '1',
  ]);
  const topics = [...r.stdout.matchAll(/^(\S+) m$/gm)].map((m) => m[1]).sort();
  const granted = /^Subscribed \(mid: \d+\): (\d+)$/m.exec(r.stdout)?.[1];
  return { topics, granted: granted === undefined ? undefined : Number(granted) };
}

async function observe(t: Test, port: number): Promise<Observed> {
  const pub = (user: string | undefined, clientId: string, topic: string) =>
    run(t, 'mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), ...login(user, clientId), '-t', topic, '-m', 'm', '-r', '-q', '1']);
  await Promise.all(SEEDS.map((topic, i) => pub('admin', `seed-${i}`, topic)));
  const pubCodes: (number | null)[] = [];
  for (const [user, clientId, topic] of WRITES) pubCodes.push((await pub(user, clientId, topic)).code);
  const landed = (await subscribe(t, port, 'admin', 'check', '#')).topics;
  const subs = await Promise.all(READS.map(([user, clientId, filter]) => subscribe(t, port, user, clientId, filter)));
  return { pubCodes, landed, received: subs.map((s) => s.topics), granted: subs.map((s) => s.granted) };
}

t.test('the same ACL in real Mosquitto and in mqprobe: same deliveries, as AclFile predicts', async (t) => {
  const dir = tempDir();
  const passwd = join(dir, 'passwd');
  const aclFile = join(dir, 'acl');
  const lines = await Promise.all(Object.entries(USERS).map(async ([u, p]) => `${u}:${await hashPassword(p)}\n`));
  writeFileSync(passwd, lines.join(''));
  writeFileSync(aclFile, ACL);
  const acl = await loadAclFile(aclFile);
  const who = (user: string | undefined, clientId: string): AclSubject =>
    user === undefined ? { clientId } : { username: user, clientId };
  const conf = `allow_anonymous true\npassword_file ${passwd}\nacl_file ${aclFile}\n`;

  const mosquitto = await startMosquitto(t, dir, conf, [passwd, aclFile]);
  const mqprobe = await startTestBroker(t, `listener 0 127.0.0.1\n${conf}`);
  const [real, ours] = await Promise.all([observe(t, mosquitto.port), observe(t, mqprobe.port)]);

  const expectedWrites = WRITES.filter(([u, c, topic]) => acl.check(who(u, c), topic, 'write')).map(([, , topic]) => topic);
  const retained = [...SEEDS, ...expectedWrites];
  t.same(real.landed, [...retained].sort(), 'Mosquitto: the publishes AclFile allows landed, the others were dropped');
  t.same(ours.landed, real.landed, 'mqprobe: the same publishes landed');
  t.same(
    real.pubCodes,
    WRITES.map(() => 0),
    'Mosquitto acknowledges denied publishes',
  );
  t.same(ours.pubCodes, real.pubCodes, 'mqprobe acknowledges them too');

  for (const [i, [user, clientId, filter]] of READS.entries()) {
    const name = `${user ?? '(anonymous)'}/${clientId} subscribed to ${filter}`;
    const expected = retained.filter((topic) => topicMatchesFilter(filter, topic) && acl.check(who(user, clientId), topic, 'read')).sort();
    t.same(real.received[i], expected, `${name}: Mosquitto delivered ${JSON.stringify(expected)}`);
    t.same(ours.received[i], real.received[i], `${name}: mqprobe delivered the same`);
    t.equal(real.granted[i], 1, `${name}: Mosquitto grants every subscription`);
    const subscribable = acl.check(who(user, clientId), filter, 'subscribe');
    if (!subscribable) t.same(real.received[i], [], `${name}: refused by mqprobe, and Mosquitto delivered nothing to it either`);
    t.equal(ours.granted[i], subscribable ? 1 : 128, `${name}: mqprobe SUBACK ${subscribable ? 1 : '0x80'}`);
  }
});
