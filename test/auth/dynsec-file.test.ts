import t from 'tap';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { hashPassword } from '../../broker/auth/password-hash.js';
import { startTestBroker, tempDir } from '../helpers/broker.js';
import { connectClient } from '../helpers/mqtt.js';
import { startDynsecPair, controlClient, handToMosquitto, initDynsecFile, pluginConf } from '../helpers/dynsec.js';

/**
 * The file both ways: what mqprobe writes, the real Mosquitto 2.0.11 with its plugin loads (and
 * the clients mqprobe created log in there), and what Mosquitto writes, mqprobe loads. A file
 * that cannot be used stops mqprobe's start with an error naming it; entries the plugin would
 * skip are skipped, each with a log line.
 */

t.test('a file written by mqprobe works in Mosquitto, and one written by Mosquitto works in mqprobe', async (t) => {
  const pair = await startDynsecPair(t);
  const p = await controlClient(t, pair.mqprobe.mqttUrl);
  const m = await controlClient(t, pair.mosquitto.url);
  const role = { command: 'createRole', rolename: 'rw', acls: [{ acltype: 'publishClientSend', topic: 'x/#', allow: true, priority: 1 }] };
  t.strictSame(
    await p.send([role, { command: 'createClient', username: 'made-by-mqprobe', password: 'p secret', roles: [{ rolename: 'rw' }] }]),
    [{ command: 'createRole' }, { command: 'createClient' }],
  );
  t.strictSame(
    await m.send([role, { command: 'createClient', username: 'made-by-mosquitto', password: 'm secret', roles: [{ rolename: 'rw' }] }]),
    [{ command: 'createRole' }, { command: 'createClient' }],
  );
  p.client.end(true);
  m.client.end(true);
  await pair.mqprobe.broker.close();
  await pair.mosquitto.stop('SIGTERM');

  // swap the files
  const fromMqprobe = readFileSync(pair.mqprobeFile);
  copyFileSync(pair.mosquittoFile, pair.mqprobeFile);
  writeFileSync(pair.mosquittoFile, fromMqprobe);
  handToMosquitto(pair.mosquittoFile, pair.mosquitto.dir);
  await pair.mosquitto.start();
  const mqprobe = await startTestBroker(t, `listener 0 127.0.0.1\n${pluginConf(pair.mqprobeFile)}`, { dir: tempDir() });

  const inMosquitto = await connectClient(t, pair.mosquitto.url, { username: 'made-by-mqprobe', password: 'p secret', protocolVersion: 4 });
  t.ok(inMosquitto.connected, "Mosquitto's plugin accepts a client and password mqprobe created");
  const inMqprobe = await connectClient(t, mqprobe.mqttUrl, { username: 'made-by-mosquitto', password: 'm secret', protocolVersion: 4 });
  t.ok(inMqprobe.connected, 'mqprobe accepts a client and password the plugin created');
  const list = [{ command: 'getRole', rolename: 'rw' }, { command: 'listClients' }];
  const m2 = await controlClient(t, pair.mosquitto.url);
  const p2 = await controlClient(t, mqprobe.mqttUrl);
  const want = await m2.send(list);
  t.strictSame(
    want[1],
    { command: 'listClients', data: { totalCount: 2, clients: ['admin', 'made-by-mqprobe'] } },
    'Mosquitto reads what mqprobe wrote',
  );
  t.strictSame((await p2.send(list))[0], want[0], 'the role reads the same in both');
});

t.test('a file that cannot be used stops the start, naming it', async (t) => {
  const dir = tempDir();
  const conf = (file: string) => `listener 0 127.0.0.1\n${pluginConf(file)}`;
  await t.rejects(startTestBroker(t, conf(join(dir, 'missing.json'))), /dynamic security file .*missing\.json cannot be read/, 'missing');
  const bad = (name: string, text: string) => {
    const f = join(dir, name);
    writeFileSync(f, text);
    return f;
  };
  await t.rejects(startTestBroker(t, conf(bad('bad.json', '{"clients": ['))), /bad\.json is not valid JSON/, 'not JSON');
  await t.rejects(
    startTestBroker(t, conf(bad('types.json', '{"clients": {"admin": 1}}'))),
    /types\.json: "clients" must be an array/,
    'clients not an array',
  );
  await t.rejects(startTestBroker(t, conf(bad('array.json', '[1, 2]'))), /must hold a JSON object/, 'not an object');
  await t.rejects(
    startTestBroker(t, `listener 0 127.0.0.1\npassword_file ${bad('pw', '')}\n${pluginConf(bad('ok.json', '{}'))}`),
    /does not chain them/,
    'with a password_file on the same listeners',
  );
  const missingOption = startTestBroker(t, 'listener 0 127.0.0.1\nplugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so\n');
  await t.rejects(missingOption, /mosquitto_dynamic_security needs plugin_opt_config_file <path>/, 'no plugin_opt_config_file');
});

t.test('entries of the wrong type are skipped as the plugin skips them, one log line each; the rest works', async (t) => {
  const dir = tempDir();
  const file = initDynsecFile(dir);
  const tree = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown[]>;
  tree.clients.push(
    { username: 7 },
    'not an object',
    { username: 'badsalt', password: 'AAAA', salt: 'AAAA', iterations: 101 },
    {
      username: 'zeroiter',
      password: (tree.clients[0] as { password: string }).password,
      salt: (tree.clients[0] as { salt: string }).salt,
      iterations: 0,
    },
    { username: 'norole', roles: [{ rolename: 'ghost' }, 'x', { rolename: 3 }] },
  );
  tree.roles.push(
    { rolename: ['x'] },
    { rolename: 'huge', acls: Array.from({ length: 20_000 }, (_, i) => ({ acltype: 'subscribePattern', topic: `h/${i}`, allow: true })) },
  );
  tree.groups = [{ groupname: null }, { groupname: 'g', clients: [{ username: 'nobody' }, { username: 'norole', priority: 'high' }] }];
  writeFileSync(file, JSON.stringify(tree));
  chmodSync(file, 0o600);
  const broker = await startTestBroker(t, `listener 0 127.0.0.1\n${pluginConf(file)}`, { dir });
  const log = readFileSync(broker.logFile, 'utf8');
  t.match(log, /client #2 has no username string: skipped/, 'username not a string');
  t.match(log, /client \\"badsalt\\" has an unusable salt, password hash or iteration count: skipped/, 'bad salt');
  t.match(log, /client \\"zeroiter\\" has an unusable/, 'iterations below 1');
  t.match(log, /role #2 has no rolename string: skipped/, 'rolename not a string');
  t.match(log, /group #1 has no groupname string: skipped/, 'groupname not a string');
  t.notMatch(log, /"password"|"salt"/, 'no hash in the log');
  const admin = await controlClient(t, broker.mqttUrl);
  const [clients, group, role] = await admin.send([
    { command: 'listClients' },
    { command: 'getGroup', groupname: 'g' },
    { command: 'getRole', rolename: 'huge' },
  ]);
  t.strictSame(clients.data, { totalCount: 2, clients: ['admin', 'norole'] }, 'the usable clients');
  t.strictSame(
    group.data,
    { group: { groupname: 'g', clients: [{ username: 'norole' }], roles: [] } },
    'members that exist; a bad priority is -1',
  );
  t.equal((role.data as { role: { acls: unknown[] } }).role.acls.length, 20_000, 'a huge ACL list loads');
});

t.test('a file that cannot be written: the change stands, the command is answered, the log says why (as the plugin)', async (t) => {
  const dir = tempDir();
  const file = initDynsecFile(dir);
  const broker = await startTestBroker(t, `listener 0 127.0.0.1\n${pluginConf(file)}`, { dir });
  mkdirSync(`${file}.new`); // FILE.new cannot be created (root writes anywhere else)
  const admin = await controlClient(t, broker.mqttUrl);
  const before = readFileSync(file, 'utf8');
  t.strictSame(await admin.send([{ command: 'createClient', username: 'kept', password: 'kept pw' }]), [{ command: 'createClient' }]);
  t.strictSame((await admin.send([{ command: 'listClients' }]))[0].data, { totalCount: 2, clients: ['admin', 'kept'] }, 'in memory');
  t.equal(readFileSync(file, 'utf8'), before, 'the file is untouched');
  t.match(readFileSync(broker.logFile, 'utf8'), /cannot save dynamic security file .*dynamic-security\.json: EISDIR/, 'logged');
  rmdirSync(`${file}.new`);
  await admin.send([{ command: 'createRole', rolename: 'later' }]);
  t.match(readFileSync(file, 'utf8'), /"username":\t"kept"/, 'the next change saves everything');
});

t.test("Mosquitto 2.1's encoded_password ($7$ with 64-byte salts, argon2id) logs in, and is written back as it was", async (t) => {
  const dir = tempDir();
  const file = initDynsecFile(dir);
  const tree = JSON.parse(readFileSync(file, 'utf8')) as { clients: Record<string, unknown>[] };
  // $7$ as Mosquitto 2.1 writes it: 64-byte salt, 1,000 iterations (made here with Node's crypto)
  const salt = randomBytes(64);
  const pbkdf2 = `$7$1000$${salt.toString('base64')}$${pbkdf2Sync('seven pw', salt, 1000, 64, 'sha512').toString('base64')}`;
  tree.clients.push(
    { username: 'seven', encoded_password: pbkdf2, roles: [] },
    { username: 'argon', encoded_password: await hashPassword('argon pw', 1, 'argon2id'), roles: [] },
    { username: 'broken', encoded_password: '$7$0$AAAA$AAAA', roles: [] },
  );
  writeFileSync(file, JSON.stringify(tree));
  const broker = await startTestBroker(t, `listener 0 127.0.0.1\n${pluginConf(file)}`, { dir });
  t.match(readFileSync(broker.logFile, 'utf8'), /client \\"broken\\": encoded_password cannot be used .*: that client cannot log in/);
  const login = (username: string, password: string) =>
    connectClient(t, broker.mqttUrl, { username, password, protocolVersion: 4 }).then(
      (c) => (c.end(true), 0),
      (err: { code?: number }) => err.code ?? -1,
    );
  t.equal(await login('seven', 'seven pw'), 0, '$7$, 64-byte salt');
  t.equal(await login('seven', 'wrong'), 5, 'a wrong password');
  t.equal(await login('argon', 'argon pw'), 0, 'argon2id');
  t.equal(await login('broken', '$7$0$AAAA$AAAA'), 5, 'an unusable hash: nobody gets in');
  const admin = await controlClient(t, broker.mqttUrl);
  await admin.send([{ command: 'setClientPassword', username: 'argon', password: 'argon new pw' }]);
  const saved = JSON.parse(readFileSync(file, 'utf8')) as { clients: Record<string, unknown>[] };
  const entry = (u: string) => saved.clients.find((c) => c.username === u)!;
  t.equal(entry('seven').encoded_password, pbkdf2, 'an encoded password is written back as read');
  t.match(
    entry('argon'),
    { iterations: 101, salt: String, password: String },
    'a new password is stored as 2.0 writes it (2.0 and 2.1 read it)',
  );
  t.notOk('encoded_password' in entry('argon'), 'without the old encoded one');
  t.equal(await login('argon', 'argon new pw'), 0, 'the new password');
});
