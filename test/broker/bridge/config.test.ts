import t from 'tap';
import { loadConfig } from '../../../app/config.js';
import { conf, configError } from '../../helpers/config.js';
import { spawnCli } from '../../helpers/broker.js';
import { fixture } from '../../helpers/paths.js';
import { mapIn, mapOut, parseTopicLine } from '../../../broker/bridge/topics.js';
import { RestartTimer } from '../../../broker/bridge/backoff.js';
import { isBridgeKey, notificationTopic, remoteClientId, localClientId } from '../../../broker/bridge/config.js';

const HEAD = 'listener 0 127.0.0.1\nallow_anonymous true\n';

t.test('several connection blocks load with Mosquitto 2.0 defaults and every key', async (t) => {
  const c = loadConfig(
    conf(
      HEAD +
        [
          'connection cloud',
          'address broker.example.com:8883 backup.example.com',
          'round_robin true',
          'topic sensors/# out 1 local/ gw1/',
          'topic cmd/# in 2 "" gw1/',
          'topic "" both 0 a/b c/d',
          'bridge_protocol_version mqttv50',
          'cleansession true',
          'local_cleansession false',
          'remote_clientid gw1',
          'local_clientid gw1-local',
          'remote_username u',
          'remote_password secret with spaces',
          'keepalive_interval 30',
          'restart_timeout 2 20',
          'start_type lazy',
          'idle_timeout 5',
          'threshold 3',
          'notifications true',
          'notifications_local_only false',
          'notification_topic gw/state',
          'try_private false',
          'bridge_attempt_unsubscribe false',
          'bridge_outgoing_retain false',
          'bridge_max_packet_size 1000',
          'bridge_bind_address 127.0.0.1',
          'bridge_cafile ca.crt',
          'bridge_insecure true',
          'bridge_tls_version tlsv1.3',
          'bridge_alpn x-amzn-mqtt-ca',
          'bridge_receive_maximum 10',
          'bridge_session_expiry_interval 60',
          'bridge_max_topic_alias 5',
          'bridge_tcp_keepalive 45',
          'bridge_reload_type immediate',
          'connection second',
          'address 127.0.0.1',
          'topic #',
        ].join('\n') +
        '\n',
    ),
  );
  t.equal(c.bridges.length, 2);
  const [a, b] = c.bridges;
  t.same(a.addresses, [
    { host: 'broker.example.com', port: 8883 },
    { host: 'backup.example.com', port: 1883 },
  ]);
  t.equal(a.remotePassword, 'secret with spaces');
  t.same(a.restart, { base: 2, cap: 20 });
  t.equal(a.protocolVersion, 5);
  t.equal(a.topics[2].localTopic, 'a/b');
  t.equal(a.topics[2].remoteTopic, 'c/d');
  t.equal(a.topics[1].localPrefix, undefined);
  t.ok(a.tls.cafile?.endsWith('/ca.crt'), 'relative paths from the config file');
  t.equal(notificationTopic(a), 'gw/state');
  t.equal(a.tcpKeepaliveIdle, 45, 'bridge_tcp_keepalive <idle>');
  t.equal(b.tcpKeepaliveIdle, undefined, 'no TCP keepalive unless asked (as Mosquitto)');
  t.equal(b.protocolVersion, 4, 'defaults: mqttv311');
  t.equal(b.cleansession, false);
  t.same(b.restart, { base: 5, cap: 30 });
  t.equal(b.startType, 'automatic');
  t.equal(a.reloadType, 'immediate');
  t.equal(b.reloadType, 'lazy', 'bridge_reload_type defaults to lazy (Mosquitto 2.1)');
  t.equal(b.tryPrivate, true);
  t.same(b.topics[0], {
    pattern: '#',
    direction: 'out',
    qos: 0,
    localPrefix: undefined,
    remotePrefix: undefined,
    localTopic: '#',
    remoteTopic: '#',
  });
  t.match(remoteClientId(b), /\.second$/, 'remote id: <hostname>.<connection>');
  t.equal(localClientId(b), `local.${remoteClientId(b)}`);
  t.equal(notificationTopic(b), `$SYS/broker/connection/${remoteClientId(b)}/state`);
  t.equal(c.warnings.length, 0, 'no "not implemented" warnings any more');
});

t.test('hostile and wrong bridge config: one ConfigError naming file, line and key', async (t) => {
  const bad: [string, RegExp][] = [
    ['address 127.0.0.1\n', /:3: address: bridge keys belong after `connection <name>`/],
    ['connection a\ntopic #\n', /connection a: needs an address/],
    ['connection a\naddress h\n', /connection a: needs at least one topic/],
    ['connection a\naddress h\ntopic # out 1 lo/+ ro/\n', /:5: topic: invalid local prefix "lo\/\+"/],
    ['connection a\naddress h\ntopic # out 1 lo/ ro/#\n', /invalid remote prefix "ro\/#"/],
    ['connection a\naddress h\ntopic # out 1 lo/\n', /needs a remote prefix/],
    ['connection a\naddress h\ntopic "" out 1 "" r/\n', /empty \(""\) topic needs both/],
    ['connection a\naddress h\ntopic a/#/b\n', /invalid topic pattern/],
    ['connection a\naddress h\ntopic # sideways\n', /expected a direction/],
    ['connection a\naddress h\ntopic # out 3\n', /expected a QoS/],
    ['connection a\naddress h\ntopic # out 1 a/ b/ extra\n', /expected 1 to 5 values/],
    ['connection a\naddress h:99999\ntopic #\n', /expected host\[:port\]/],
    ['connection a\naddress h\ntopic #\nbridge_protocol_version mqttv6\n', /expected one of mqttv31\|mqttv311\|mqttv50/],
    ['connection a\naddress h\ntopic #\nrestart_timeout 30 5\n', /must not be below the base/],
    ['connection a\naddress h\ntopic #\nbridge_psk 0102\n', /TLS-PSK bridges are not supported/],
    ['connection a\naddress h\ntopic #\nbridge_identity me\n', /TLS-PSK bridges are not supported/],
    ['connection a\naddress h\ntopic #\nbridge_require_ocsp true\n', /OCSP/],
    [
      'connection a\naddress h\ntopic #\nbridge_tcp_keepalive 10 5 3\n',
      /bridge_tcp_keepalive: Node.js cannot set the TCP keepalive interval and count.*bridge_tcp_keepalive <idle>/,
    ],
    ['connection a\naddress h\ntopic #\nbridge_tcp_keepalive 0\n', /bridge_tcp_keepalive/],
    ['connection a\naddress h\ntopic #\nbridge_tcp_keepalive 40000\n', /bridge_tcp_keepalive/],
    ['connection a\naddress h\ntopic #\nbridge_tcp_keepalive ten\n', /expected an integer/],
    ['connection a\naddress h\ntopic #\nbridge_tcp_user_timeout 100\n', /TCP_USER_TIMEOUT/],
    ['connection a\naddress h\ntopic #\nbridge_reload_type later\n', /bridge_reload_type: expected one of lazy\|immediate/],
    ['connection a\naddress h\ntopic #\nbridge_certfile c.pem\nbridge_keyfile k.pem\n', /TLS keys need bridge_cafile/],
    ['connection a\naddress h\ntopic #\nremote_password p\n', /needs remote_username/],
    ['connection a\naddress h\ntopic #\nkeepalive_interval 2\n', /0 or at least 5/],
    ['connection a\naddress h\ntopic #\nconnection a\n', /connection a is configured twice/],
    [
      'connection a\naddress h\ntopic #\nremote_clientid x\nconnection b\naddress h\ntopic #\nremote_clientid x\n',
      /also used by connection a/,
    ],
    ['connection bad/name\n', /expected a connection name/],
    ['acl_file /dev/null\nconnection a\naddress h\ntopic #\nlocal_username u\n', /local_username: .*trusted/],
  ];
  for (const [text, pattern] of bad) configError(t, HEAD + text, pattern, text.trim().split('\n').pop()!);
});

t.test('10,000 topic lines load in well under a second', async (t) => {
  const lines = Array.from({ length: 10_000 }, (_, i) => `topic t${i}/# both 1 l${i}/ r${i}/`).join('\n');
  const started = Date.now();
  const c = loadConfig(conf(`${HEAD}connection many\naddress 127.0.0.1\n${lines}\n`));
  t.equal(c.bridges[0].topics.length, 10_000);
  t.ok(Date.now() - started < 2000, `${Date.now() - started} ms`);
  t.equal(mapOut(c.bridges[0].topics, 'l9999/t9999/x'), 'r9999/t9999/x');
});

t.test('prefix mapping, as Mosquitto: first prefixed line of the direction that matches', async (t) => {
  const topics = [
    parseTopicLine(['a/#', 'out', '0', 'L/', 'R/']),
    parseTopicLine(['a/b', 'out', '0', 'X/', 'Y/']),
    parseTopicLine(['c/#', 'in', '1', '""', 'RC/']),
    parseTopicLine(['plain/#', 'both']),
    parseTopicLine(['""', 'both', '0', 'fixed/l', 'fixed/r']),
  ];
  t.equal(mapOut(topics, 'L/a/b'), 'R/a/b');
  t.equal(mapOut(topics, 'X/a/b'), 'Y/a/b');
  t.equal(mapOut(topics, 'plain/z'), 'plain/z', 'no prefix: unchanged');
  t.equal(mapOut(topics, 'fixed/l'), 'fixed/r', '"" pattern: prefix for prefix');
  t.equal(mapIn(topics, 'RC/c/d'), 'c/d', '"" local prefix: the remote one is removed');
  t.equal(mapIn(topics, 'R/a/b'), 'R/a/b', 'an out line does not map in');
  t.equal(mapIn(topics, 'fixed/r'), 'fixed/l');
});

t.test('restart_timeout: constant, or decorrelated jitter between base and cap, back to base after a connection', async (t) => {
  t.equal(new RestartTimer({ base: 7 }).next(), 7);
  const top = new RestartTimer({ base: 2, cap: 20 }, () => 1);
  t.same([top.next(), top.next(), top.next(), top.next()], [6, 18, 20, 20], 'grows ×3 up to the cap');
  top.reset();
  t.equal(top.next(), 6);
  t.equal(new RestartTimer({ base: 2, cap: 20 }, () => 0).next(), 2, 'never below base');
});

t.test('mqprobe --test-config reports a bad bridge line with file:line and exits non-zero, as for any key', async (t) => {
  const file = conf(`${HEAD}connection c\naddress 127.0.0.1\ntopic # out 1 a/+ b/\n`);
  const cli = spawnCli(t, ['--test-config', '-c', file]);
  t.not(await cli.exited, 0);
  t.match(cli.output(), `${file}:5: topic: invalid local prefix "a/+"`);
});

t.test(
  "Mosquitto's annotated example: its bridge section, enabled with a name, an address and a topic, loads with its stated defaults",
  async (t) => {
    const { readFileSync } = await import('node:fs');
    const section = readFileSync(fixture('mosquitto', 'mosquitto.conf.example'), 'utf8').split('\n');
    const lines = section
      .slice(section.findIndex((l) => l.startsWith('#connection ')))
      .filter((l) => /^#[a-z_]+ \S/.test(l) && isBridgeKey(l.slice(1).split(' ')[0]))
      .filter((l) => !/^#(address|topic) /.test(l))
      .map((l) => l.slice(1));
    t.ok(lines.length >= 12, `${lines.length} example lines`);
    const c = loadConfig(conf(`${HEAD}connection example\naddress 127.0.0.1\ntopic #\n${lines.join('\n')}\n`));
    const defaults = loadConfig(conf(`${HEAD}connection example\naddress 127.0.0.1\ntopic #\n`));
    t.same({ ...c.bridges[0], pos: null }, { ...defaults.bridges[0], pos: null }, "the example's values are mqprobe's defaults");
  },
);
