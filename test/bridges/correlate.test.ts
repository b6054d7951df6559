import t, { type Test } from 'tap';
import { appendFileSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunningBroker } from '../../app/assemble.js';
import { loadConfig } from '../../app/config.js';
import { freePort, startTestBroker, tempDir, type TestBroker } from '../helpers/broker.js';
import { until } from '../helpers/mqtt.js';
import { makePki } from '../helpers/certs.js';
import { fixture } from '../helpers/paths.js';
import { post } from './osquery-agent.js';
import { OpenCtiReplay, wireEvent } from './replay/opencti-stream.js';

const SECRET = 'enroll-C0RRELATE-51c2';
const TOKEN = 'opencti-token-correlate-7b1d';
const pki = makePki();
type Rec = Record<string, any>;

const lines = (...p: string[]) =>
  readFileSync(fixture('correlate', ...p), 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Rec);

/** The STIX fixture's C2 indicator, its pattern pointed at the address the fixture flow talks to. */
function c2Indicator(): Rec {
  const bundle = JSON.parse(readFileSync(fixture('stix', 'indicator-for-c2-ip-address.json'), 'utf8')) as Rec;
  return { ...bundle.objects[0], pattern: "[ipv4-addr:value = '203.0.113.50']" };
}

/** Every publish in the broker (topic, payload), from the broker itself: beats, alerts and all. */
function watch(broker: RunningBroker): { topic: string; data: Rec }[] {
  const seen: { topic: string; data: Rec }[] = [];
  broker.aedes.on('publish', (packet) => {
    if (!packet.topic.startsWith('beats/') && !packet.topic.startsWith('$SYS/broker/alerts/')) return;
    try {
      seen.push({ topic: packet.topic, data: JSON.parse(packet.payload.toString()) as Rec });
    } catch {
      /* not a record */
    }
  });
  return seen;
}

async function metric(b: TestBroker, name: string, label: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${b.httpPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(label));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

interface Setup {
  dir: string;
  osqueryPort: number;
  opencti: OpenCtiReplay;
}

async function startAll(s: Setup): Promise<{ broker: TestBroker; seen: { topic: string; data: Rec }[] }> {
  const { dir } = s;
  const conf = [
    'listener 0 127.0.0.1',
    'allow_anonymous true',
    'http_listener 0 127.0.0.1',
    `persistence_location ${dir}`,
    `capture_sink file ${join(dir, 'capture.ndjson')}`,
    'capture_payload full',
    'detect_rule new-network-process learn 1ms',
    'beat zeek',
    `zeek_log_dir ${join(dir, 'zeek')}`,
    'zeek_start beginning',
    'beat fleet',
    `fleet_result_log ${join(dir, 'fleet', 'osquery_result')}`,
    'fleet_start beginning',
    'beat osquery',
    `osquery_listener ${s.osqueryPort} 127.0.0.1`,
    `osquery_certfile ${pki.serverCert}`,
    `osquery_keyfile ${pki.serverKey}`,
    `osquery_enroll_secret_file ${join(dir, 'secret')}`,
    'beat opencti',
    `opencti_url ${s.opencti.url}`,
    `opencti_token_file ${join(dir, 'opencti.token')}`,
    'beat correlate',
    'correlate_window 6s',
    'correlate_max_sockets_per_host 5000',
    '',
  ].join('\n');
  const broker = await startTestBroker(t, conf, { dir });
  const seen = watch(broker.broker);
  await until(() => readFileSync(broker.logFile, 'utf8').includes('osquery TLS endpoint listening'), 15_000, 'osquery listener');
  return { broker, seen };
}

const of = (seen: { topic: string; data: Rec }[], topic: string) => seen.filter((m) => m.topic === topic).map((m) => m.data);
const uids = (seen: { topic: string; data: Rec }[], topic: string) => of(seen, topic).map((d) => d.uid as string);

t.test('config: defaults with no keys, bad values name file, line and key', async (t) => {
  const dir = tempDir();
  const file = join(dir, 'm.conf');
  writeFileSync(file, 'listener 0 127.0.0.1\nbeat correlate\n');
  t.doesNotThrow(() => loadConfig(file), 'a bare beat correlate block is valid');
  for (const [text, want] of [
    ['correlate_window soon', /:3: correlate_window: expected a duration/],
    ['correlate_max_sockets 0', /:3: correlate_max_sockets: expected an integer in 1\.\.10000000/],
    ['correlate_query maybe', /:3: correlate_query: expected on or off/],
    ['correlate_query_topic beats/+/query', /:3: correlate_query_topic: expected a topic without wildcards/],
    ['correlate_colour blue', /:3: correlate_colour: unknown key for beat correlate/],
  ] as const) {
    writeFileSync(file, `listener 0 127.0.0.1\nbeat correlate\n${text}\n`);
    t.throws(() => loadConfig(file), want, text);
  }
});

t.test(
  'replayed osquery agent, Fleet result log and Zeek logs while the beats run: flows attributed, unattributed, queried on an alert, once across a restart',
  async (t) => {
    const dir = tempDir();
    for (const d of ['zeek', 'fleet']) mkdirSync(join(dir, d));
    writeFileSync(join(dir, 'secret'), `${SECRET}\n`);
    writeFileSync(join(dir, 'opencti.token'), `${TOKEN}\n`);
    const opencti = new OpenCtiReplay(
      t,
      [wireEvent('1718006000000-0', 'create', { data: c2Indicator(), message: 'creates an indicator', version: '4' })],
      TOKEN,
    );
    await opencti.start();
    const setup: Setup = { dir, osqueryPort: await freePort(), opencti };
    const { broker, seen } = await startAll(setup);
    const agent = (path: string, body: Rec) => post(pki.caCert, setup.osqueryPort, path, body);
    await until(() => readFileSync(broker.logFile, 'utf8').includes('indicator'), 10_000, 'the indicator set');

    // ws-7 enrolls and sends its result log (socket_events connect, interface_addresses, a UDP socket)
    const enrolled = await agent('/enroll', {
      enroll_secret: SECRET,
      host_identifier: 'ws-7',
      host_details: { system_info: { hostname: 'ws-7', uuid: '4c4c4544-0057-3510-8058-b7c04f4e5731' } },
    });
    const nodeKey = enrolled.body.node_key as string;
    t.equal((await agent('/log', { node_key: nodeKey, log_type: 'result', data: lines('osquery', 'ws-7.results.ndjson') })).status, 200);
    // web-1's Fleet result log: its two addresses (and a link-local one), nginx listening on [::]:443
    copyFileSync(fixture('correlate', 'fleet', 'osquery_result.web-1.before.ndjson'), join(dir, 'fleet', 'osquery_result'));
    await until(() => of(seen, 'beats/fleet/result/pack/mqprobe-correlate/listening_ports_processes').length === 1, 10_000, 'fleet rows');
    t.equal(await metric(broker, 'mqprobe_beat_correlate_tracked', 'what="hosts"'), 2, 'ws-7 and web-1 are known');

    // Zeek writes: ssl and dns first (they end first), then conn in JSON (json-streaming) and TSV
    for (const f of ['json_streaming_ssl.log', 'json_streaming_dns.log'])
      copyFileSync(fixture('correlate', 'zeek', f), join(dir, 'zeek', f));
    await until(() => of(seen, 'beats/zeek/ssl').length + of(seen, 'beats/zeek/dns').length === 2, 10_000, 'zeek ssl and dns records');
    for (const f of ['json_streaming_conn.log', 'conn.log']) copyFileSync(fixture('correlate', 'zeek', f), join(dir, 'zeek', f));
    await until(() => uids(seen, 'beats/zeek/conn').length === 7, 10_000, 'zeek conn records');
    await until(() => uids(seen, 'beats/correlate/conn').length === 3, 10_000, 'flows explained by rows already there');
    t.same(uids(seen, 'beats/correlate/conn').sort(), ['CdnsUdpFromWs7Resolv', 'CkQ1xd2Wm4ZcurlOut1', 'Cv6HttpsInboundweb1']);

    // the row for the inbound ssh flow comes after its conn record (the next process_open_sockets snapshot)
    appendFileSync(join(dir, 'fleet', 'osquery_result'), readFileSync(fixture('correlate', 'fleet', 'osquery_result.web-1.late.ndjson')));
    await until(() => uids(seen, 'beats/correlate/conn').includes('CsSH7n3Inbound0web1'), 10_000, 'the late row explains the ssh flow');
    await until(() => uids(seen, 'beats/correlate/unattributed').length === 1, 15_000, 'the unexplained flow after the window');

    const conn = (uid: string) => of(seen, 'beats/correlate/conn').find((d) => d.uid === uid)!;
    const curl = conn('CkQ1xd2Wm4ZcurlOut1');
    t.match(curl, {
      'id.orig_h': '198.51.100.7',
      host: { name: 'ws-7', id: '4c4c4544-0057-3510-8058-b7c04f4e5731', ip: ['198.51.100.7'] },
      process: { pid: 4242, name: 'curl', executable: '/usr/bin/curl' },
      user: { id: '1000' },
      network: { direction: 'outbound', transport: 'tcp', type: 'ipv4' },
      zeek: { ssl: [{ server_name: 'updates.example-c2.test' }] },
      correlate: { matched_by: 'socket_events', waited_ms: 0 },
    });
    t.match(conn('CsSH7n3Inbound0web1'), {
      host: { name: 'web-1', id: '9f8e7d6c-5b4a-3210-fedc-ba9876543210', ip: ['192.0.2.10', '2001:db8::10', 'fe80::5054:ff:fe12:3456'] },
      process: { pid: 31337, name: 'sshd', command_line: 'sshd: alice [priv]' },
      user: { id: '0', name: 'root' },
      network: { direction: 'inbound' },
      correlate: { matched_by: 'process_open_sockets' },
    });
    t.ok(conn('CsSH7n3Inbound0web1').correlate.waited_ms > 0, 'it waited for its row');
    t.match(conn('Cv6HttpsInboundweb1'), {
      host: { name: 'web-1' },
      process: { pid: 900, name: 'nginx', executable: '/usr/sbin/nginx' },
      network: { direction: 'inbound', type: 'ipv6' },
      correlate: { matched_by: 'listening_ports' },
    });
    t.match(conn('CdnsUdpFromWs7Resolv'), {
      process: { name: 'systemd-resolve' },
      user: { name: 'systemd-resolve' },
      network: { direction: 'outbound', transport: 'udp' },
      zeek: { dns: [{ query: 'updates.example-c2.test' }] },
    });
    t.match(of(seen, 'beats/correlate/unattributed')[0], {
      uid: 'CnoProcessExplains4',
      host: { name: 'ws-7' },
      network: { direction: 'outbound' },
      correlate: { reason: 'no-socket-row' },
    });
    t.notOk(of(seen, 'beats/correlate/unattributed')[0].process, 'no process is made up');
    t.equal(await metric(broker, 'mqprobe_beat_correlate_events_total', 'event="duplicate-flows"'), 1, 'the repeated conn line');
    t.equal(await metric(broker, 'mqprobe_beat_correlate_events_total', 'event="unrelated"'), 1, 'the pair no host is known by');

    // detection: the C2 flow names its process; the processes are new on the network
    await until(() => of(seen, '$SYS/broker/alerts/threat-intel-process').length === 1, 10_000, 'threat-intel-process alert');
    const intel = of(seen, '$SYS/broker/alerts/threat-intel-process')[0];
    t.match(intel.message, /curl \(pid 4242, \/usr\/bin\/curl, user 1000\) on ws-7 had a flow to 203\.0\.113\.50/);
    t.equal(intel.threat.indicator.ip, '203.0.113.50');
    // the first process of each host starts its learning period; the sshd flow came well after nginx's
    await until(
      () =>
        of(seen, '$SYS/broker/alerts/new-network-process').some((a) =>
          /sshd .* on web-1 talked to the network for the first time/.test(a.message),
        ),
      10_000,
      'new-network-process alert for sshd',
    );
    const firstSeen = of(seen, '$SYS/broker/alerts/new-network-process');
    t.ok(
      firstSeen.every((a) => a.event.risk_score === 21),
      'informational',
    );
    t.equal(new Set(firstSeen.map((a) => a.mqprobe.detect.entity)).size, firstSeen.length, 'one alert per host and process');
    const firstFlow = of(seen, 'beats/correlate/conn')[0];
    t.notOk(
      firstSeen.some((a) => a.mqprobe.detect.entity === `${firstFlow.host.name} ${firstFlow.process.executable}`),
      'the first process seen is learned',
    );
    // on-demand query: the alerts name ws-7's address; the replayed agent collects the query and answers it
    await until(() => of(seen, 'beats/osquery/query/accepted').length === 1, 10_000, 'the correlator asked ws-7');
    const read = await agent('/distributed/read', { node_key: nodeKey });
    const [[queryId, sql]] = Object.entries(read.body.queries as Record<string, string>);
    t.match(
      sql,
      /FROM process_open_sockets s LEFT JOIN processes p USING \(pid\) WHERE s\.remote_address IN \('203\.0\.113\.50', '::ffff:203\.0\.113\.50'\)/,
    );
    const answerRow = {
      pid: '4242',
      name: 'curl',
      path: '/usr/bin/curl',
      cmdline: 'curl -s https://updates.example-c2.test/x',
      uid: '1000',
      family: '2',
      protocol: '6',
      local_address: '198.51.100.7',
      local_port: '51000',
      remote_address: '203.0.113.50',
      remote_port: '443',
    };
    t.equal(
      (await agent('/distributed/write', { node_key: nodeKey, queries: { [queryId]: [answerRow] }, statuses: { [queryId]: 0 } })).status,
      200,
    );
    await until(() => of(seen, 'beats/correlate/query/ws-7').length === 1, 10_000, 'the answer on beats/correlate/query/ws-7');
    const answer = of(seen, 'beats/correlate/query/ws-7')[0];
    const alertIds = seen
      .filter((m) => m.topic.startsWith('$SYS/broker/alerts/') && m.data.source?.ip === '198.51.100.7')
      .map((m) => m.data.event.id);
    t.ok(alertIds.includes(answer.alert.id), `the answer names the alert that asked (${answer.alert.id})`);
    t.match(answer, {
      host: { name: 'ws-7' },
      related: { ip: ['203.0.113.50'] },
      osquery: { query_id: queryId, status: 0 },
      rows: [answerRow],
    });
    t.ok(
      (await metric(broker, 'mqprobe_beat_correlate_events_total', 'event="query-rate-limited"')) >= 1,
      'more alerts for ws-7 within a minute: not asked again',
    );
    t.equal(of(seen, 'beats/osquery/query/accepted').length, 1);

    // hostile rows in one batch: 10,000 sockets, non-numeric ports, addresses that are not addresses
    const many = Array.from({ length: 10_000 }, (_, i) => ({
      pid: String(5000 + i),
      socket: String(i),
      family: '2',
      protocol: '6',
      local_address: '198.51.100.7',
      local_port: String(20000 + i),
      remote_address: '203.0.113.77',
      remote_port: '443',
    }));
    const sock = (over: Rec) => ({
      pid: '1',
      family: '2',
      protocol: '6',
      local_address: '198.51.100.7',
      local_port: '1',
      remote_address: '203.0.113.77',
      remote_port: '443',
      ...over,
    });
    const hostile = [
      ...many,
      sock({ local_port: 'http' }),
      sock({ remote_port: '99999' }),
      sock({ local_address: "'; DROP TABLE x; --" }),
      sock({ remote_address: '203.0.113.777' }),
    ];
    const batch = {
      name: 'pack/mqprobe-correlate/process_open_sockets',
      hostIdentifier: 'ws-7',
      action: 'snapshot',
      unixTime: 1718006460,
      snapshot: hostile,
    };
    t.equal((await agent('/log', { node_key: nodeKey, log_type: 'result', data: [batch] })).status, 200);
    await until(
      () => of(seen, 'beats/osquery/result/pack/mqprobe-correlate/process_open_sockets').length >= 10_004,
      20_000,
      'the hostile batch',
    );
    t.equal(await metric(broker, 'mqprobe_beat_correlate_events_total', 'event="row-bad-port"'), 2);
    t.equal(await metric(broker, 'mqprobe_beat_correlate_events_total', 'event="row-bad-address"'), 2);
    t.ok(
      (await metric(broker, 'mqprobe_beat_correlate_events_total', 'event="sockets-evicted-host"')) >= 5000,
      'ws-7 holds at most 5000 rows',
    );
    t.ok((await metric(broker, 'mqprobe_beat_correlate_tracked', 'what="sockets"')) <= 5000 + 10);

    // restart in the middle: a flow is pending when the broker stops; its row comes after the restart
    appendFileSync(
      join(dir, 'zeek', 'json_streaming_conn.log'),
      JSON.stringify({
        _path: 'conn',
        ts: '2024-06-10T08:01:00.000000Z',
        uid: 'CpendingOverRestart',
        'id.orig_h': '198.51.100.7',
        'id.orig_p': 52000,
        'id.resp_h': '203.0.113.80',
        'id.resp_p': 443,
        proto: 'tcp',
        duration: 0.5,
      }) + '\n',
    );
    await until(() => uids(seen, 'beats/zeek/conn').includes('CpendingOverRestart'), 10_000, 'the pending flow');
    const pendingSince = Date.now();
    t.notOk(
      [...uids(seen, 'beats/correlate/conn'), ...uids(seen, 'beats/correlate/unattributed')].includes('CpendingOverRestart'),
      'pending when the broker stops',
    );
    await broker.broker.close();
    const again = await startAll(setup);
    // the same conn line again (Zeek re-sent it): published before the restart, not again
    appendFileSync(
      join(dir, 'zeek', 'json_streaming_conn.log'),
      readFileSync(fixture('correlate', 'zeek', 'json_streaming_conn.log'), 'utf8').split('\n')[0] + '\n',
    );
    const row: Rec = { ...lines('osquery', 'ws-7.results.ndjson')[0], unixTime: 1718006461 };
    row.columns = {
      ...row.columns,
      pid: '5150',
      path: '/usr/bin/wget',
      local_port: '52000',
      remote_address: '203.0.113.80',
      time: '1718006460',
    };
    t.equal(
      (await post(pki.caCert, setup.osqueryPort, '/log', { node_key: nodeKey, log_type: 'result', data: [row] })).status,
      200,
      'the node key survived',
    );
    // correlate_window is 6 s: a restart slower than that (a loaded machine) rightly reports the flow instead
    const rowInWindow = Date.now() - pendingSince < 5000;
    await until(
      () =>
        [...uids(again.seen, 'beats/correlate/conn'), ...uids(again.seen, 'beats/correlate/unattributed')].includes('CpendingOverRestart'),
      15_000,
      'the pending flow finished or reported after the restart',
    );
    const after = [...uids(again.seen, 'beats/correlate/conn'), ...uids(again.seen, 'beats/correlate/unattributed')];
    t.same(after, ['CpendingOverRestart'], 'after the restart only the pending flow is published, once');
    if (rowInWindow)
      t.equal(
        of(again.seen, 'beats/correlate/conn')[0]?.process?.executable,
        '/usr/bin/wget',
        'explained by the row that came after the restart',
      );
    else t.comment('the restart took about the window or longer: finished or reported, once (checked above)');
    await until(() => uids(again.seen, 'beats/zeek/conn').includes('CkQ1xd2Wm4ZcurlOut1'), 10_000, 'the re-sent conn line');
    t.equal(
      await metric(again.broker, 'mqprobe_beat_correlate_events_total', 'event="duplicate-flows"'),
      1,
      'the re-sent line was recognised',
    );
  },
);

/** A broker with the Zeek, osquery and correlate beats only (no detection in the way): for notice-driven queries. */
async function noticeBroker(t: Test, query: 'on' | 'off') {
  const dir = tempDir();
  mkdirSync(join(dir, 'zeek'));
  writeFileSync(join(dir, 'secret'), `${SECRET}\n`);
  const osqueryPort = await freePort();
  const conf = [
    'listener 0 127.0.0.1',
    'http_listener 0 127.0.0.1',
    `persistence_location ${dir}`,
    'beat zeek',
    `zeek_log_dir ${join(dir, 'zeek')}`,
    'zeek_start beginning',
    'beat osquery',
    `osquery_listener ${osqueryPort} 127.0.0.1`,
    `osquery_certfile ${pki.serverCert}`,
    `osquery_keyfile ${pki.serverKey}`,
    `osquery_enroll_secret_file ${join(dir, 'secret')}`,
    'beat correlate',
    `correlate_query ${query}`,
    '',
  ].join('\n');
  const broker = await startTestBroker(t, conf, { dir });
  const seen = watch(broker.broker);
  await until(() => readFileSync(broker.logFile, 'utf8').includes('osquery TLS endpoint listening'), 15_000, 'osquery listener');
  const agent = (path: string, body: Rec) => post(pki.caCert, osqueryPort, path, body);
  const nodeKey = (await agent('/enroll', { enroll_secret: SECRET, host_identifier: 'scanner-1' })).body.node_key as string;
  // the host that raised the fixture's notices (src 10.164.94.120) is known by its interface address
  const ifaces = {
    name: 'interface_addresses',
    hostIdentifier: 'scanner-1',
    action: 'snapshot',
    unixTime: 1521911700,
    snapshot: [{ interface: 'eth0', address: '10.164.94.120' }],
  };
  t.equal((await agent('/log', { node_key: nodeKey, log_type: 'result', data: [ifaces] })).status, 200);
  await until(() => of(seen, 'beats/osquery/result/interface_addresses').length === 1, 10_000, 'interface row');
  copyFileSync(fixture('zeek', 'notice.log'), join(dir, 'zeek', 'notice.log'));
  await until(() => of(seen, 'beats/zeek/notice').length === 100, 10_000, 'the fixture notices');
  return { broker, seen, agent, nodeKey };
}

t.test('replayed osquery agent: a Zeek notice naming a known host asks it, once a minute; correlate_query off asks nobody', async (t) => {
  const { broker, seen, agent, nodeKey } = await noticeBroker(t, 'on');
  await until(() => of(seen, 'beats/osquery/query/accepted').length === 1, 10_000, 'the query');
  const read = await agent('/distributed/read', { node_key: nodeKey });
  const [[queryId, sql]] = Object.entries(read.body.queries as Record<string, string>);
  t.match(sql, /WHERE s\.remote_address IN \('10\.47\.3\.200', '::ffff:10\.47\.3\.200'\);$/, 'bounded to the notice’s other address');
  await agent('/distributed/write', { node_key: nodeKey, queries: { [queryId]: [] }, statuses: { [queryId]: 0 } });
  await until(() => of(seen, 'beats/correlate/query/scanner-1').length === 1, 10_000, 'the answer');
  t.match(of(seen, 'beats/correlate/query/scanner-1')[0], {
    alert: { id: 'zeek-notice:CmC9kY1X0u9nP78KZc', rule: 'zeek-notice:SSL::Invalid_Server_Cert' },
    host: { name: 'scanner-1', ip: ['10.164.94.120'] },
    osquery: { query_id: queryId, status: 0 },
    rows: [],
  });
  t.ok(
    (await metric(broker, 'mqprobe_beat_correlate_events_total', 'event="query-rate-limited"')) >= 1,
    'the other notices of the minute are not asked',
  );
  t.equal(of(seen, 'beats/osquery/query/accepted').length, 1);

  const off = await noticeBroker(t, 'off');
  t.same(await off.agent('/distributed/read', { node_key: off.nodeKey }).then((r) => r.body.queries), {}, 'correlate_query off: no query');
  t.equal(of(off.seen, 'beats/osquery/query/accepted').length, 0);
  t.equal(await metric(off.broker, 'mqprobe_beat_correlate_events_total', 'event="query-sent"'), 0, 'nothing sent');
  t.equal(await metric(broker, 'mqprobe_beat_correlate_events_total', 'event="query-sent"'), 1, 'while the other broker sent one');
});
