import t from 'tap';
import { readFileSync } from 'node:fs';
import { startDynsecPair, controlClient, readJson, type Responses } from '../helpers/dynsec.js';

/**
 * The same `$CONTROL/dynamic-security/v1` command sequences, sent over MQTT 3.1.1 by mqtt.js to
 * the real Mosquitto 2.0.11 with its real dynamic security plugin and to mqprobe: the responses
 * must be identical, and so must the files both write (but for the random salts and hashes).
 */

const SEQUENCE: unknown[][] = [
  // roles, with ACLs of every type and priorities
  [
    {
      command: 'createRole',
      rolename: 'sensor',
      textname: 'Sensors',
      acls: [{ acltype: 'publishClientSend', topic: 'sensors/#', allow: true, priority: 3 }],
    },
    { command: 'createRole', rolename: 'reader', textdescription: 'reads', correlationData: 'c-1' },
    { command: 'createRole', rolename: 'sensor' },
    { command: 'createRole' },
    { command: 'createRole', rolename: 5 },
    { command: 'addRoleACL', rolename: 'reader', acltype: 'subscribePattern', topic: 'sensors/+/temp', allow: true, priority: 2 },
    { command: 'addRoleACL', rolename: 'reader', acltype: 'subscribeLiteral', topic: 'sensors/#', allow: false, priority: 9 },
    { command: 'addRoleACL', rolename: 'reader', acltype: 'publishClientReceive', topic: 'sensors/#', allow: true },
    { command: 'addRoleACL', rolename: 'reader', acltype: 'unsubscribePattern', topic: '#', allow: true, priority: -4 },
    { command: 'addRoleACL', rolename: 'reader', acltype: 'unsubscribeLiteral', topic: 'x/y', allow: false },
    { command: 'addRoleACL', rolename: 'reader', acltype: 'publishClientReceive', topic: 'sensors/#', allow: true },
    { command: 'addRoleACL', rolename: 'reader', acltype: 'subscribe', topic: 'a' },
    { command: 'addRoleACL', rolename: 'reader', acltype: 'publishClientSend', topic: 'a/#/b' },
    { command: 'addRoleACL', rolename: 'reader', acltype: 'publishClientSend' },
    { command: 'addRoleACL', rolename: 'reader', topic: 'a' },
    { command: 'addRoleACL', rolename: 'nobody', acltype: 'publishClientSend', topic: 'a' },
    { command: 'addRoleACL', rolename: 'reader', acltype: 'PUBLISHCLIENTSEND', topic: 'same/prio', priority: 2, allow: true },
    { command: 'addRoleACL', rolename: 'reader', acltype: 'publishClientSend', topic: 'same/prio2', priority: 2 },
    { command: 'getRole', rolename: 'reader' },
    { command: 'getRole', rolename: 'nope' },
    { command: 'removeRoleACL', rolename: 'reader', acltype: 'unsubscribeLiteral', topic: 'x/y' },
    { command: 'removeRoleACL', rolename: 'reader', acltype: 'unsubscribeLiteral', topic: 'x/y' },
    { command: 'removeRoleACL', rolename: 'reader', acltype: 'bogus', topic: 'x/y' },
    { command: 'modifyRole', rolename: 'sensor', textname: 'Sensor devices' },
    { command: 'modifyRole', rolename: 'ghost' },
    { command: 'listRoles' },
    { command: 'listRoles', verbose: true, count: 1, offset: 1 },
    { command: 'listRoles', count: 0 },
  ],
  // clients
  [
    {
      command: 'createClient',
      username: 'alice',
      password: 'alice pw',
      roles: [{ rolename: 'sensor', priority: 5 }, { rolename: 'reader' }],
    },
    {
      command: 'createClient',
      username: 'bob',
      password: 'bob pw',
      clientid: 'bob-1',
      textname: 'Bob',
      textdescription: 'Bob the builder',
    },
    { command: 'createClient', username: 'carol', roles: [{ rolename: 'missing' }] },
    { command: 'createClient', username: 'carol', roles: 'reader' },
    { command: 'createClient', username: 'carol', roles: [{ priority: 1 }] },
    { command: 'createClient', username: 'carol', password: 7 },
    { command: 'createClient', username: 'carol', clientid: false },
    { command: 'createClient', username: 'carol', textname: [] },
    { command: 'createClient', username: 'carol', groups: [{ groupname: 'nogroup' }] },
    { command: 'createClient', username: 'alice' },
    { command: 'createClient', username: 'dave', password: '' },
    { command: 'getClient', username: 'alice' },
    { command: 'getClient', username: 'carol' },
    { command: 'getClient' },
    { command: 'addClientRole', username: 'bob', rolename: 'reader', priority: 7 },
    { command: 'addClientRole', username: 'bob', rolename: 'reader' },
    { command: 'addClientRole', username: 'nobody', rolename: 'reader' },
    { command: 'addClientRole', username: 'bob', rolename: 'nothing' },
    { command: 'removeClientRole', username: 'alice', rolename: 'reader' },
    { command: 'removeClientRole', username: 'alice', rolename: 'reader' },
    { command: 'disableClient', username: 'bob' },
    { command: 'getClient', username: 'bob' },
    { command: 'enableClient', username: 'bob' },
    { command: 'enableClient', username: 'zed' },
    { command: 'setClientId', username: 'bob', clientid: '' },
    { command: 'setClientId', username: 'bob', clientid: 'bob-2' },
    { command: 'setClientId', username: 'bob', clientid: 3 },
    { command: 'setClientPassword', username: 'bob', password: '' },
    { command: 'setClientPassword', username: 'bob' },
    { command: 'setClientPassword', username: 'nobody', password: 'x' },
    { command: 'setClientPassword', username: 'bob', password: 'new bob pw' },
    { command: 'modifyClient', username: 'dave', textname: 'Dave', clientid: 'dave-1', roles: [{ rolename: 'reader', priority: 2 }] },
    { command: 'modifyClient', username: 'dave', roles: [{ rolename: 'gone' }] },
    { command: 'modifyClient', username: 'dave', roles: {} },
    { command: 'modifyClient', username: 'nobody' },
    { command: 'listClients' },
    { command: 'listClients', verbose: true },
    { command: 'listClients', offset: 2, count: 5 },
    { command: 'deleteClient', username: 'dave' },
    { command: 'deleteClient', username: 'dave' },
  ],
  // groups and the anonymous group
  [
    { command: 'createGroup', groupname: 'staff', textname: 'Staff', roles: [{ rolename: 'reader', priority: 1 }] },
    { command: 'createGroup', groupname: 'guests' },
    { command: 'createGroup', groupname: 'staff' },
    { command: 'createGroup', groupname: 'x', roles: [{ rolename: 'none' }] },
    { command: 'createGroup', groupname: 'x', roles: 4 },
    { command: 'addGroupClient', groupname: 'staff', username: 'alice', priority: 3 },
    { command: 'addGroupClient', groupname: 'staff', username: 'bob' },
    { command: 'addGroupClient', groupname: 'staff', username: 'bob' },
    { command: 'addGroupClient', groupname: 'staff', username: 'nobody' },
    { command: 'addGroupClient', groupname: 'nogroup', username: 'bob' },
    { command: 'addGroupClient', groupname: 'guests', username: 'bob', priority: 9 },
    { command: 'getClient', username: 'bob' },
    { command: 'getGroup', groupname: 'staff' },
    { command: 'getGroup', groupname: 'zzz' },
    { command: 'addGroupRole', groupname: 'guests', rolename: 'sensor', priority: 4 },
    { command: 'addGroupRole', groupname: 'guests', rolename: 'sensor' },
    { command: 'addGroupRole', groupname: 'guests', rolename: 'x' },
    { command: 'removeGroupRole', groupname: 'guests', rolename: 'sensor' },
    { command: 'removeGroupClient', groupname: 'guests', username: 'bob' },
    { command: 'removeGroupClient', groupname: 'guests', username: 'bob' },
    { command: 'removeGroupClient', groupname: 'guests', username: 'ghost' },
    { command: 'getAnonymousGroup' },
    { command: 'setAnonymousGroup', groupname: 'nothere' },
    { command: 'setAnonymousGroup', groupname: 'guests' },
    { command: 'getAnonymousGroup' },
    {
      command: 'modifyGroup',
      groupname: 'guests',
      textdescription: 'visitors',
      clients: [{ username: 'alice', priority: 2 }, { username: 'ghost' }],
    },
    { command: 'modifyGroup', groupname: 'staff', roles: [{ rolename: 'sensor' }] },
    { command: 'modifyGroup', groupname: 'zzz' },
    { command: 'listGroups' },
    { command: 'listGroups', verbose: true },
    { command: 'getClient', username: 'alice' },
    { command: 'deleteGroup', groupname: 'staff' },
    { command: 'deleteGroup', groupname: 'staff' },
    // a role given by addClientRole/addGroupRole: Mosquitto 2.0.11 leaves a dangling role behind when it deletes
    // one given by createClient/createGroup `roles` (docs/dynamic-security.md), so the comparison avoids that
    { command: 'createRole', rolename: 'temp' },
    { command: 'addClientRole', username: 'alice', rolename: 'temp' },
    { command: 'addGroupRole', groupname: 'guests', rolename: 'temp', priority: 1 },
    { command: 'getClient', username: 'alice' },
    { command: 'deleteRole', rolename: 'temp' },
    { command: 'deleteRole', rolename: 'temp' },
    { command: 'listGroups', verbose: true },
    { command: 'listClients', verbose: true },
  ],
  // default access
  [
    { command: 'getDefaultACLAccess' },
    {
      command: 'setDefaultACLAccess',
      acls: [
        { acltype: 'publishClientSend', allow: true },
        { acltype: 'subscribe', allow: true },
        { acltype: 'bogus', allow: true },
        { acltype: 'unsubscribe', allow: 'yes' },
      ],
    },
    { command: 'setDefaultACLAccess', acls: {} },
    { command: 'getDefaultACLAccess', correlationData: 'd' },
  ],
  // malformed and unknown commands: each gets the plugin's error, the rest of the batch runs
  [
    { command: 'frobnicate', correlationData: 'u1' },
    {},
    'createClient',
    7,
    { command: 'GETCLIENT', username: 'alice' },
    { Command: 'listRoles' },
    { command: 'getRole', rolename: 'reader', correlationData: 12 },
    { command: 'listRoles' },
  ],
];

/** Deleted salts and hashes (random): everything else of the files must agree. */
function withoutSecrets(file: unknown): unknown {
  const f = structuredClone(file) as { clients?: Record<string, unknown>[] };
  for (const c of f.clients ?? []) {
    t.ok(
      typeof c.password === 'string' ? typeof c.salt === 'string' && c.iterations === 101 : c.salt === undefined,
      `${String(c.username)}: hash fields`,
    );
    delete c.password;
    delete c.salt;
  }
  return f;
}

t.test('every v1 command answers as the real plugin does, and both write the same file', async (t) => {
  const pair = await startDynsecPair(t);
  const m = await controlClient(t, pair.mosquitto.url);
  const p = await controlClient(t, pair.mqprobe.mqttUrl);
  for (const [i, batch] of SEQUENCE.entries()) {
    const want: Responses = await m.send(batch);
    const got: Responses = await p.send(batch);
    t.same(got, want, `batch ${i + 1}: responses`);
    t.strictSame(got, want, `batch ${i + 1}: responses, strictly`);
  }
  t.strictSame(withoutSecrets(readJson(pair.mqprobeFile)), withoutSecrets(readJson(pair.mosquittoFile)), 'the files agree');
  const text = (file: string) => readFileSync(file, 'utf8').replace(/"(password|salt)":\t"[^"]*"/g, '"$1":\t"…"');
  t.equal(text(pair.mqprobeFile), text(pair.mosquittoFile), 'byte for byte, as cJSON prints it (but for salts and hashes)');
});

t.test('hostile control messages get the plugin error shape, and the next command still works', async (t) => {
  const pair = await startDynsecPair(t);
  const m = await controlClient(t, pair.mosquitto.url);
  const p = await controlClient(t, pair.mqprobe.mqttUrl);
  const big = { command: 'createClient', username: 'big', textdescription: 'x'.repeat(1024 * 1024) };
  const hostile: (string | Buffer | unknown[])[] = [
    '{"commands": [',
    // cJSON's nesting limit (CJSON_NESTING_LIMIT 1000) on both sides of it, and far beyond
    `{"commands":${'['.repeat(998)}${']'.repeat(998)}}`,
    `{"commands":${'['.repeat(999)}${']'.repeat(999)}}`,
    `{"commands":${'['.repeat(1000)}${']'.repeat(1000)}}`,
    `{"commands":${'['.repeat(200_000)}${']'.repeat(200_000)}}`,
    Buffer.from([0xff, 0xfe, 0x00, 0x7b]),
    '',
    '[]',
    '{"commands": {}}',
    '{"nothing": 1}',
    'null',
    [{ command: 'createClient', username: 'bad\u0001name' }],
    [{ command: 'createClient', username: 'nul\u0000cut', password: 'p' }],
    [{ command: 'createClient', username: 'surrogate\ud800' }],
    [big],
    [{ command: 'getClient', username: 'big' }],
    ['x'.repeat(1024 * 1024)],
    [
      {
        command: 'createRole',
        rolename: 'many',
        acls: Array.from({ length: 5000 }, (_, i) => ({
          acltype: 'publishClientSend',
          topic: `t/${i}`,
          priority: i % 7,
          allow: i % 2 === 0,
        })),
      },
    ],
    [{ command: 'getRole', rolename: 'many' }],
  ];
  for (const [i, msg] of hostile.entries()) {
    const want = await m.send(msg);
    const got = await p.send(msg);
    t.strictSame(got, want, `hostile message ${i + 1}: same answer (${JSON.stringify(got).slice(0, 120)})`);
  }
  const after = [{ command: 'listClients' }];
  t.strictSame(await p.send(after), await m.send(after), 'still answering');
});
