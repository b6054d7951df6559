import t from 'tap';
import { subPatternCovers } from '../../broker/auth/dynamic-security/acl-check.js';
import { parseDynsecFile } from '../../broker/auth/dynamic-security/file.js';
import { DynamicSecurity } from '../../broker/auth/dynamic-security/dynamic-security.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/broker.js';

/** The plugin's own cases for its subscribe-pattern rule (sub_matches_sub.c, Mosquitto 2.0.11), and priority order. */
t.test("subscribePattern/unsubscribePattern: the plugin's sub_acl_check cases", async (t) => {
  const cases: [string, string, boolean][] = [
    ['foo/+/bar', 'foo/#', false],
    ['foo/+/ba℞/#', 'foo/baz/ba℞', true],
    ['foo/+/ba℞/#', 'foo/baz/ba℞/+', true],
    ['foo/+/ba℞/#', 'foo/baz/ba℞/#', true],
    ['foo/+/ba℞/#', 'foo/baz/+/#', false],
    ['/+//#', '/foo///#', true],
    ['#', '#', true],
    ['#', '+', true],
    ['/#', '+', false],
    ['/#', '/+', true],
    ['/+', '#', false],
    ['/+', '+', false],
    ['+/+', 'topic/topic', true],
    ['+/+', 'topic/topic/', false],
    ['+', '#', false],
    ['+', '+', true],
    ['a/b/c/d/e', 'a/b/c/d/e', true],
    ['a/b/ /d/e', 'a/b/c/d/e', false],
    // and: `#` alone covers $ topics, unlike topic matching
    ['#', '$SYS/broker/uptime', true],
    ['a/#', 'a', true],
  ];
  for (const [acl, sub, want] of cases) t.equal(subPatternCovers(acl, sub), want, `${acl} covers ${sub}: ${want}`);
});

t.test("priorities: the client's roles first, then its groups', highest priority first; within a role, ACLs by priority", async (t) => {
  const file = join(tempDir(), 'd.json');
  const acl = (acltype: string, topic: string, allow: boolean, priority = 0) => ({ acltype, topic, allow, priority });
  writeFileSync(
    file,
    JSON.stringify({
      defaultACLAccess: { publishClientSend: true, publishClientReceive: false, subscribe: false, unsubscribe: true },
      roles: [
        { rolename: 'low', acls: [acl('publishClientSend', 'x/#', false), acl('publishClientSend', 'x/y', true, 1)] },
        { rolename: 'high', acls: [acl('publishClientSend', 'x/z', false)] },
        { rolename: 'group', acls: [acl('publishClientSend', 'g/#', false), acl('publishClientSend', 'x/q', true)] },
      ],
      clients: [
        {
          username: 'u',
          roles: [
            { rolename: 'low', priority: 1 },
            { rolename: 'high', priority: 2 },
          ],
        },
      ],
      groups: [{ groupname: 'gr', roles: [{ rolename: 'group' }], clients: [{ username: 'u' }] }],
    }),
  );
  t.same(parseDynsecFile('', file).data.clients.size, 0, 'an empty file is an empty configuration');
  const d = DynamicSecurity.load(file);
  t.equal(d.allows('u', 'x/y', 'write'), true, 'priority 1 ACL before priority 0 in the same role');
  t.equal(d.allows('u', 'x/w', 'write'), false, 'x/# deny');
  t.equal(d.allows('u', 'x/z', 'write'), false, 'higher-priority role decides');
  t.equal(d.allows('u', 'x/q', 'write'), false, "the client's own roles decide before its group's");
  t.equal(d.allows('u', 'g/1', 'write'), false, "the group's role");
  t.equal(d.allows('u', 'free/topic', 'write'), true, 'default access');
  t.equal(d.allows('u', '$CONTROL/dynamic-security/v1', 'write'), false, 'never $CONTROL by default');
  t.equal(d.allows('stranger', 'free/topic', 'write'), false, 'a username the file does not know: nothing');
  t.equal(d.allows(undefined, 'free/topic', 'write'), true, 'anonymous without anonymous group: default access');
});

t.test('%c and %u levels (Mosquitto 2.1): whole levels only, compared literally', async (t) => {
  const file = join(tempDir(), 'd.json');
  writeFileSync(
    file,
    JSON.stringify({
      roles: [
        {
          rolename: 'own',
          acls: [
            { acltype: 'publishClientSend', topic: 'devices/%c/#', allow: true },
            { acltype: 'publishClientReceive', topic: 'users/%u/inbox', allow: true },
            { acltype: 'subscribePattern', topic: 'users/%u/#', allow: true },
            { acltype: 'publishClientSend', topic: 'x/%count', allow: true },
          ],
        },
      ],
      clients: [
        { username: 'bob', roles: [{ rolename: 'own' }] },
        { username: '+', roles: [{ rolename: 'own' }] },
      ],
    }),
  );
  const d = DynamicSecurity.load(file);
  t.equal(d.allows('bob', 'devices/dev-1/temp', 'write', 'dev-1'), true, '%c is the client id');
  t.equal(d.allows('bob', 'devices/dev-2/temp', 'write', 'dev-1'), false, 'not another client id');
  t.equal(d.allows('bob', 'devices/dev-1/temp', 'write', undefined), false, 'no client id (the HTTP side): %c matches nothing');
  t.equal(d.allows('bob', 'devices/a/b/temp', 'write', 'a/b'), false, 'a client id with / is one literal level, never two');
  t.equal(d.allows('bob', 'users/bob/inbox', 'read', 'c'), true, '%u is the username');
  t.equal(d.allows('bob', 'users/alice/inbox', 'read', 'c'), false, 'not another user');
  t.equal(d.allows('+', 'users/alice/inbox', 'read', 'c'), false, 'a username "+" is no wildcard');
  t.equal(d.allows('+', 'users/+/inbox', 'read', 'c'), true, 'only itself');
  t.equal(d.allows('bob', 'users/bob/#', 'subscribe', 'c'), true, 'subscribePattern with %u');
  t.equal(d.allows('bob', 'users/+/#', 'subscribe', 'c'), false, 'a wildcard filter is not covered by %u');
  t.equal(d.allows('bob', 'x/%count', 'write', 'count'), true, '%count is a literal level');
  t.equal(d.allows('bob', 'x/count', 'write', 'count'), false, 'and not a pattern');
});
