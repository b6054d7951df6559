import t from 'tap';
import { mkdirSync, writeFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../app/config.js';
import { fixture } from '../helpers/paths.js';
import { tempDir } from '../helpers/tmp.js';
import { conf, configError } from '../helpers/config.js';
import { isBridgeKey } from '../../broker/bridge/config.js';

t.test("Mosquitto's own annotated example config loads cleanly", async (t) => {
  const c = loadConfig(fixture('mosquitto', 'mosquitto.conf.example'));
  t.equal(c.warnings.length, 0, 'every line is a comment: no warnings');
  t.ok(c.localOnly, 'no listener configured: Mosquitto 2.0 local-only mode');
  t.same(
    c.listeners.map((l) => `${l.bind} ${l.port}`),
    ['127.0.0.1 1883', '::1 1883'],
    'IPv4 and IPv6 loopback, as Mosquitto 2.0',
  );
  t.equal(c.security.allowAnonymous, true);
});

t.test('uncommenting every Mosquitto key of the example still loads (known keys warn, never fail)', async (t) => {
  const { readFileSync } = await import('node:fs');
  const dir = tempDir();
  // Take each commented "#key value" default line and enable it; bridge keys (test/broker/bridge/config.test.ts loads
  // the example's bridge section) and paths that need files are kept out.
  const lines = readFileSync(fixture('mosquitto', 'mosquitto.conf.example'), 'utf8')
    .split('\n')
    .filter(
      (l) =>
        /^#[a-z_]+ \S/.test(l) &&
        !isBridgeKey(l.slice(1).split(' ')[0]) &&
        !/^#(include_dir|password_file|acl_file|psk_file|pid_file|cafile|capath|certfile|keyfile|crlfile|dhparamfile|listener|port|http_dir|plugin|auth_plugin|persistence_location|log_dest|tls_|ciphers|require_certificate|use_identity|use_subject|connection |address|bind_interface|mount_point)/.test(
          l,
        ),
    )
    .map((l) => l.slice(1));
  const c = loadConfig(conf(lines.join('\n'), 'all.conf', dir));
  t.ok(lines.length > 30, `enabled ${lines.length} example lines`);
  const warned = new Set(c.warnings.map((w) => w.key));
  t.ok(
    warned.has('memory_limit') && warned.has('upgrade_outgoing_qos') && !warned.has('set_tcp_nodelay'),
    `unimplemented Mosquitto keys warn (${[...warned].join(', ')})`,
  );
  t.ok(
    c.warnings.every((w) => w.file.endsWith('all.conf') && w.line > 0),
    'warnings name file and line',
  );
});

t.test('listeners, per_listener_settings and security sections', async (t) => {
  const dir = tempDir();
  const c = loadConfig(
    conf(
      `
# global before any listener
allow_anonymous false
per_listener_settings true
listener 1884 127.0.0.1
allow_anonymous true
listener 8883
certfile server.crt
keyfile server.key
require_certificate true
cafile ca.crt
use_identity_as_username true
listener 9001
protocol websockets
mount_point tenant1/
max_connections 10
`,
      'l.conf',
      dir,
    ),
  );
  t.equal(c.listeners.length, 3);
  t.same(
    c.listeners.map((l) => [l.port, l.bind, l.protocol]),
    [
      [1884, '127.0.0.1', 'mqtt'],
      [8883, undefined, 'mqtt'],
      [9001, undefined, 'websockets'],
    ],
  );
  t.equal(c.listeners[0].security.allowAnonymous, true, 'per-listener allow_anonymous');
  t.equal(c.listeners[1].tls.certfile, join(dir, 'server.crt'), 'relative paths resolve from the config file');
  t.equal(c.listeners[2].mountPoint, 'tenant1/');
  t.equal(c.listeners[2].maxConnections, 10);
  t.notOk(c.localOnly);
});

t.test('without per_listener_settings, security keys in listener blocks are global (Mosquitto 2.0)', async (t) => {
  const c = loadConfig(conf('listener 1883\nallow_anonymous true\npassword_file /etc/mosquitto/passwd\n'));
  t.equal(c.security.allowAnonymous, true);
  t.equal(c.security.passwordFile, '/etc/mosquitto/passwd');
  t.same(c.listeners[0].security, {});
});

t.test('port and bind_address define the default listener; -p overrides ports', async (t) => {
  const file = conf('port 1999\nbind_address 127.0.0.1\n');
  const c = loadConfig(file);
  t.same(
    c.listeners.map((l) => [l.port, l.bind]),
    [[1999, '127.0.0.1']],
  );
  const o = loadConfig(file, { ports: [2001, 2002] });
  t.same(
    o.listeners.map((l) => l.port),
    [2001, 2002],
  );
});

t.test('include_dir reads *.conf in order, and include loops are refused', async (t) => {
  const dir = tempDir();
  mkdirSync(join(dir, 'conf.d'));
  writeFileSync(join(dir, 'conf.d', 'b.conf'), 'listener 1885\n');
  writeFileSync(join(dir, 'conf.d', 'a.conf'), 'listener 1884\n');
  writeFileSync(join(dir, 'conf.d', 'ignored.txt'), 'listener 1886\n');
  const c = loadConfig(conf('include_dir conf.d\n', 'main.conf', dir));
  t.same(
    c.listeners.map((l) => l.port),
    [1884, 1885],
  );

  const loop = tempDir();
  mkdirSync(join(loop, 'd'));
  writeFileSync(join(loop, 'd', 'x.conf'), 'include_dir .\n');
  t.throws(() => loadConfig(conf('include_dir d\n', 'main.conf', loop)), /include loop/);
  symlinkSync(join(loop, 'd'), join(loop, 'd', 'self'));
  t.throws(() => loadConfig(join(loop, 'main.conf')), /include loop/, 'loops through symlinks too');
});

t.test('hostile and invalid input names file, line and key', async (t) => {
  configError(t, 'listener 99999\n', /:1: listener: expected an integer in 0\.\.65535/, 'port out of range');
  configError(t, 'max_keepalive ten\n', /max_keepalive: expected an integer/, 'not a number');
  configError(t, 'allow_anonymous yes\n', /allow_anonymous: expected true or false/, 'bad boolean');
  configError(t, '\n\nno_such_key 1\n', /:3: no_such_key: unknown configuration key/, 'unknown key, line 3');
  configError(t, 'listener 1883\nlistener 1883\n', /port 1883 is already used/, 'duplicate listener');
  configError(t, 'listener 8883\ncertfile a.crt\n', /certfile and keyfile must be given together/, 'half TLS');
  configError(t, 'persistence\n', /persistence: expected 1 value, got 0/, 'missing value');
  configError(t, 'capture_sink carrier-pigeon\n', /capture_sink: expected one of/, 'bad sink');
  configError(t, 'capture_sink logstash http://x:1\n', /expected a tcp or tls URL/, 'bad sink URL');
  configError(t, 'zeek_log_dir /tmp\n', /beat keys belong inside the block/, 'beat key outside a block');
  configError(t, `${'x'.repeat(70_000)}\n`, /line longer than/, 'oversized line');
  configError(t, 'listener 1883\u0000\n', /NUL byte/, 'NUL byte');
  t.throws(() => loadConfig('/nonexistent/mqprobe.conf'), /cannot read config file \/nonexistent\/mqprobe.conf \(ENOENT\)/, 'missing file');
  configError(t, 'include_dir /nonexistent-dir\n', /cannot read include_dir/, 'missing include_dir');
});

t.test('beat blocks collect their keys until the next beat line', async (t) => {
  const c = loadConfig(conf('beat zeek\nzeek_log_dir /opt/zeek\nbeat_format ngsi\nlistener 1883\nbeat fleet\nfleet_result_log /x\n'));
  t.same(
    c.beats.map((b) => [b.name, b.lines.map((l) => l.key)]),
    [
      ['zeek', ['zeek_log_dir', 'beat_format']],
      ['fleet', ['fleet_result_log']],
    ],
  );
  t.equal(c.listeners[0].port, 1883, 'broker keys inside a beat block still apply to the broker');
  configError(t, 'beat zeek\nbeat zeek\n', /configured twice/, 'duplicate beat');
});

t.test('bounded sizes and durations: in range loads, either side of it names the bounds as written', async (t) => {
  const zeek = (v: string) => `beat zeek\nzeek_log_dir /tmp\nzeek_max_line_bytes ${v}\n`;
  t.doesNotThrow(() => loadConfig(conf(zeek('256'))), 'the lower bound itself');
  t.doesNotThrow(() => loadConfig(conf(zeek('256M'))), 'the upper bound itself');
  configError(t, zeek('255'), /zeek_max_line_bytes: expected a size between 256 and 256M/, 'below');
  configError(t, zeek('257M'), /zeek_max_line_bytes: expected a size between 256 and 256M/, 'above');
  configError(t, zeek('12x'), /expected a byte size such as/, 'not a size');
  configError(t, 'http_sse_heartbeat 99ms\n', /http_sse_heartbeat: expected a duration between 100ms and 1h/, 'duration below');
  configError(t, 'http_sse_heartbeat 61m\n', /http_sse_heartbeat: expected a duration between 100ms and 1h/, 'duration above');
  configError(t, 'http_sse_client_buffer 1023\n', /http_sse_client_buffer: expected at least 1k/, 'size with a lower bound only');
  t.equal(loadConfig(conf('http_sse_heartbeat 1h\nhttp_sse_client_buffer 1k\n')).sse?.heartbeatMs, 3_600_000, 'bounds are inclusive');
});
