import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../app/config.js';
import { hashPassword } from '../../broker/auth/password-hash.js';
import { spawnCli, startTestBroker, tempDir } from '../helpers/broker.js';
import { conf, configError as refused } from '../helpers/config.js';
import { mosquittoRefuses, run } from './peers.js';

t.test('file plugins map onto password_file and acl_file', async (t) => {
  const dir = tempDir();
  const c = loadConfig(
    conf(
      `listener 1883
plugin /usr/lib/x86_64-linux-gnu/mosquitto_password_file.so
plugin_opt_password_file passwd
plugin /usr/lib/mosquitto_acl_file.so
plugin_opt_acl_file /etc/mosquitto/my acl
`,
      'mqprobe.conf',
      dir,
    ),
  );
  t.equal(c.security.passwordFile, join(dir, 'passwd'), 'relative to the config file');
  t.equal(c.security.aclFile, '/etc/mosquitto/my acl', 'the rest of the line, spaces included');
  t.same(c.warnings, [], 'no warnings');

  const old = loadConfig(
    conf(
      'auth_plugin mosquitto_password_file\nauth_opt_password_file /p\nglobal_plugin /x/mosquitto_acl_file.dll\nplugin_opt_acl_file /a\n',
    ),
  );
  t.equal(old.security.passwordFile, '/p', 'auth_plugin/auth_opt_ (deprecated names), bare plugin name');
  t.equal(old.security.aclFile, '/a', 'global_plugin without per_listener_settings is global');
  t.equal(
    loadConfig(conf('plugin x.so.1/../mosquitto_password_file.so\nplugin_opt_password_file /p\npassword_file /p\n')).security.passwordFile,
    '/p',
    'the same file given twice is fine',
  );
});

t.test(
  'per_listener_settings: plugin applies to its listener, global_plugin to every listener, plugin_load/plugin_use by name',
  async (t) => {
    const c = loadConfig(
      conf(`per_listener_settings true
global_plugin /usr/lib/mosquitto_acl_file.so
plugin_opt_acl_file /etc/acl-all
plugin_load pw /usr/lib/mosquitto_password_file.so
plugin_opt_password_file /etc/passwd-shared
listener 1884
plugin mosquitto_password_file.so
plugin_opt_password_file /etc/passwd-1884
listener 1885
plugin_use pw
listener 1886
plugin_use pw
listener 1887
allow_anonymous true
`),
    );
    t.same(
      c.listeners.map((l) => [l.port, l.security.passwordFile, l.security.aclFile]),
      [
        [1884, '/etc/passwd-1884', '/etc/acl-all'],
        [1885, '/etc/passwd-shared', '/etc/acl-all'],
        [1886, '/etc/passwd-shared', '/etc/acl-all'],
        [1887, undefined, '/etc/acl-all'],
      ],
    );
    t.same(c.security, {}, 'nothing global');
    const late = loadConfig(
      conf(
        'per_listener_settings true\nplugin_load pw mosquitto_password_file\nlistener 1884\nplugin_use pw\nplugin_opt_password_file /late\n',
      ),
    );
    t.equal(late.listeners[0].security.passwordFile, '/late', 'an option after plugin_use configures the used plugin');
  },
);

t.test("the dynamic security plugin maps onto mqprobe's implementation, by every Mosquitto key that loads a plugin", async (t) => {
  const file = '/var/lib/mosquitto/dynamic-security.json';
  const plain = loadConfig(
    conf(
      `listener 1883\nplugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so\nplugin_opt_config_file ${file}\nplugin_opt_other x\n`,
    ),
  );
  t.equal(plain.security.dynamicSecurityFile, file, 'plugin + plugin_opt_config_file');
  t.match(
    plain.warnings,
    [{ key: 'plugin_opt_other', message: /takes only plugin_opt_config_file; ignored/ }],
    'another option: a warning, as the plugin ignores it',
  );
  const named = loadConfig(
    conf(
      `per_listener_settings true\nplugin_load dynsec /usr/lib/libmosquitto_dynamic_security.so\nplugin_opt_config_file ${file}\nlistener 1883\nplugin_use dynsec\n`,
    ),
  );
  t.equal(named.listeners[0].security.dynamicSecurityFile, file, 'Mosquitto 2.1 plugin_load/plugin_use, another file name');
  const global = loadConfig(conf(`global_plugin mosquitto_dynamic_security\nauth_opt_config_file ${file}\n`));
  t.equal(global.security.dynamicSecurityFile, file, 'global_plugin, auth_opt_ name');
});

t.test('plugins mqprobe cannot run stop the start, naming the plugin and line', async (t) => {
  refused(
    t,
    'auth_plugin /mosquitto/go-auth.so\nauth_opt_backends files\n',
    /:1: auth_plugin: plugin \/mosquitto\/go-auth\.so cannot be loaded: mqprobe runs no Mosquitto plugins/,
    'go-auth',
  );
  refused(
    t,
    'allow_anonymous true\nglobal_plugin /opt/my acl plugin.so\n',
    /:2: global_plugin: plugin \/opt\/my acl plugin\.so cannot be loaded/,
    'an ACL plugin, with allow_anonymous true',
  );
  refused(
    t,
    'plugin_load auth /usr/lib/mosquitto_go_auth.so\n',
    /:1: plugin_load: plugin \/usr\/lib\/mosquitto_go_auth\.so cannot be loaded/,
    'plugin_load of an unsupported plugin',
  );
  refused(
    t,
    'listener 1883\npsk_hint hint\npsk_file /etc/mosquitto/psk\n',
    /:3: psk_file: TLS-PSK is not supported by mqprobe/,
    'psk_file',
  );
});

t.test('plugin lines mqprobe cannot map stop the start too', async (t) => {
  refused(
    t,
    'plugin_opt_password_file /p\n',
    /:1: plugin_opt_password_file: needs a plugin, global_plugin or plugin_load line before it/,
    'an option without a plugin',
  );
  refused(
    t,
    'plugin mosquitto_password_file\nplugin_opt_acl_file /a\n',
    /:2: plugin_opt_acl_file: mosquitto_password_file has no option "acl_file" \(it takes plugin_opt_password_file\)/,
    'an option the plugin does not take',
  );
  refused(
    t,
    'plugin mosquitto_password_file\n',
    /:1: plugin: mosquitto_password_file needs plugin_opt_password_file <path>/,
    'a file plugin without its file',
  );
  refused(t, 'plugin\n', /:1: plugin: missing value/, 'no path');
  refused(
    t,
    'password_file /a\nplugin mosquitto_password_file\nplugin_opt_password_file /b\n',
    /:2: plugin: mosquitto_password_file names \/b, but this section already uses \/a/,
    'two password files for one section',
  );
  refused(
    t,
    'per_listener_settings true\nplugin mosquitto_acl_file\nplugin_opt_acl_file /a\nlistener 1883\n',
    /:2: plugin: with per_listener_settings true, plugin must follow the listener/,
    'a per-listener plugin before any listener',
  );
  refused(
    t,
    'per_listener_settings true\nlistener 1883\nplugin_use nope\n',
    /:3: plugin_use: plugin "nope" is not loaded/,
    'plugin_use of an unknown name',
  );
  refused(
    t,
    'per_listener_settings true\nplugin_load pw mosquitto_password_file\nplugin_opt_password_file /p\nplugin_use pw\n',
    /:4: plugin_use: plugin_use must stand in a listener block/,
    'plugin_use outside a listener',
  );
  refused(
    t,
    'plugin_load pw mosquitto_password_file\nplugin_opt_password_file /p\nlistener 1883\nplugin_use pw\n',
    /:4: plugin_use: .*needs per_listener_settings true/,
    'plugin_use without per_listener_settings',
  );
  refused(
    t,
    'plugin_load pw mosquitto_password_file\nplugin_load pw mosquitto_acl_file\n',
    /:2: plugin_load: plugin name "pw" is already loaded \(line 1\)/,
    'a name loaded twice',
  );
  refused(t, 'plugin_load pw\n', /:1: plugin_load: expected at least 2 values, got 1/, 'plugin_load without a path');
});

t.test('the CLI exits non-zero with one clear line for a plugin it cannot run (and Mosquitto 2.0.11 refuses to start too)', async (t) => {
  const dir = tempDir();
  const file = conf(
    'listener 0 127.0.0.1\nplugin /usr/lib/mosquitto_dynamic_security.so\nplugin_opt_config_file /nonexistent/dynsec.json\n',
    'mqprobe.conf',
    dir,
  );
  const cli = spawnCli(t, ['-c', file]);
  t.equal(await cli.exited, 3, 'exit code 3 (config error)');
  const lines = cli.output().trim().split('\n');
  t.equal(
    lines.at(-1),
    "mqprobe: dynamic security file /nonexistent/dynsec.json cannot be read: ENOENT: no such file or directory, open '/nonexistent/dynsec.json'",
    'a dynamic security file that cannot be read: its last line names it',
  );
  t.notMatch(cli.output(), /^\s+at /m, 'no stack');
  const goAuth = conf('listener 0 127.0.0.1\nplugin /usr/lib/mosquitto_go_auth.so\n', 'go-auth.conf', dir);
  const refusedPlugin = spawnCli(t, ['-c', goAuth]);
  t.equal(await refusedPlugin.exited, 3, 'a plugin mqprobe cannot run: exit code 3');
  t.same(
    refusedPlugin.output().trim().split('\n'),
    [
      `mqprobe: ${goAuth}:2: plugin: plugin /usr/lib/mosquitto_go_auth.so cannot be loaded: mqprobe runs no Mosquitto plugins (only mosquitto_password_file, mosquitto_acl_file and mosquitto_dynamic_security, implemented by mqprobe itself); starting without it would change who gets in`,
    ],
    'one line, no stack',
  );

  const psk = spawnCli(t, ['-c', conf('listener 0 127.0.0.1\npsk_file /etc/psk\n')]);
  t.equal(await psk.exited, 3, 'psk_file: exit code 3');
  t.match(psk.output().trim(), /^mqprobe: .*:2: psk_file: TLS-PSK is not supported by mqprobe[^\n]*$/, 'psk_file: one line');

  const m = await mosquittoRefuses(t, dir, 'allow_anonymous true\nplugin /nonexistent/mosquitto_go_auth.so\n');
  t.not(m.code, 0, `Mosquitto 2.0.11 does not start either (exit ${m.code})`);
  t.match(m.stdout + m.stderr, /go_auth/, 'and names the plugin');
});

t.test('a broker configured through the password file plugin lets the right users in (real mosquitto_pub)', async (t) => {
  const dir = tempDir();
  writeFileSync(join(dir, 'passwd'), `alice:${await hashPassword('alice pw', 101, 'argon2id')}\nbob:${await hashPassword('bob pw')}\n`);
  writeFileSync(join(dir, 'acl'), 'user alice\ntopic write a/#\nuser bob\ntopic write b/#\n');
  const b = await startTestBroker(
    t,
    `listener 0 127.0.0.1
plugin /usr/lib/x86_64-linux-gnu/mosquitto_password_file.so
plugin_opt_password_file passwd
plugin /usr/lib/x86_64-linux-gnu/mosquitto_acl_file.so
plugin_opt_acl_file acl
`,
    { dir },
  );
  const pub = async (user: string, password: string) =>
    (
      await run(t, 'mosquitto_pub', [
        '-p',
        String(b.port),
        '-h',
        '127.0.0.1',
        '-u',
        user,
        '-P',
        password,
        '-t',
        'a/x',
        '-m',
        '1',
        '-q',
        '1',
      ])
    ).code;
  t.equal(await pub('alice', 'alice pw'), 0, 'alice (argon2id) is in');
  t.not(await pub('alice', 'bob pw'), 0, 'a wrong password is refused');
  t.equal(await pub('bob', 'bob pw'), 0, 'bob ($7$) is in');
  t.not(await pub('mallory', 'x'), 0, 'an unknown user is refused');
  const anon = await run(t, 'mosquitto_pub', ['-p', String(b.port), '-h', '127.0.0.1', '-t', 'a/x', '-m', '1']);
  t.not(anon.code, 0, 'anonymous is refused (allow_anonymous false by default)');
});
