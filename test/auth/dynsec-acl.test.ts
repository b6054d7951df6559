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
