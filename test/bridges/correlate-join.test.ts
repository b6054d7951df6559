import t from 'tap';
import { Correlator, type Attribution, type CorrelatorLimits, type Unattributed } from '../../bridges/correlate/correlator.js';
import { flowOf, rowFact, type Flow, type SocketRow } from '../../bridges/correlate/inputs.js';
import { normalAddress, portOf } from '../../bridges/correlate/address.js';

const LIMITS: CorrelatorLimits = {
  skewMs: 30_000,
  windowMs: 120_000,
  socketTtlMs: 600_000,
  maxSockets: 100_000,
  maxSocketsPerHost: 10_000,
  maxPending: 1000,
};
const T = 1_718_006_400; // 2024-06-10T08:00:00Z, event time (s)
const NOW = 1_800_000_000_000; // wall clock (ms), unrelated to event time

function harness(limits: Partial<CorrelatorLimits> = {}) {
  const attributed: Attribution[] = [];
  const unattributed: Unattributed[] = [];
  const c = new Correlator({ ...LIMITS, ...limits }, { attributed: (a) => attributed.push(a), unattributed: (u) => unattributed.push(u) });
  return { c, attributed, unattributed };
}

function conn(uid: string, orig: string, op: number, resp: string, rp: number, proto = 'tcp', ts = T, duration = 2): Flow {
  const f = flowOf({ ts, uid, 'id.orig_h': orig, 'id.orig_p': op, 'id.resp_h': resp, 'id.resp_p': rp, proto, duration });
  if (typeof f === 'string') throw new Error(f);
  return f;
}

/** An osquery result row as the osquery/fleet beats emit it (columns as text, as osquery writes them). */
function row(host: string, name: string, columns: Record<string, unknown>, unixTime = T): Record<string, unknown> {
  return { name, hostIdentifier: host, action: 'added', unixTime, columns };
}

function socket(r: Record<string, unknown>): SocketRow {
  const f = rowFact(r, NOW);
  if (f.kind !== 'socket') throw new Error(`not a socket row: ${JSON.stringify(f)}`);
  return f.row;
}

const connectEvent = (host: string, pid: number, path: string, l: string, lp: number, r: string, rp: number, time = T) =>
  row(host, 'socket_events', {
    action: 'connect',
    pid: String(pid),
    path,
    fd: '3',
    auid: '1000',
    family: '2',
    local_address: l,
    remote_address: r,
    local_port: String(lp),
    remote_port: String(rp),
    time: String(time),
    uptime: '1234',
    status: 'succeeded',
  });

t.test('socket_events row first, then the flow: outbound, attributed at once, with user id', async (t) => {
  const { c, attributed } = harness();
  c.addSocket(socket(connectEvent('ws-7', 4242, '/usr/bin/curl', '198.51.100.7', 51000, '203.0.113.50', 443)), NOW);
  c.addFlow(conn('C1', '198.51.100.7', 51000, '203.0.113.50', 443), NOW + 5000);
  t.equal(attributed.length, 1);
  const a = attributed[0];
  t.equal(a.direction, 'outbound');
  t.equal(a.host.name, 'ws-7');
  t.same(a.host.addresses, ['198.51.100.7'], 'the local address made the host known');
  t.same(a.process, { pid: 4242, name: 'curl', executable: '/usr/bin/curl', commandLine: undefined, userId: '1000', userName: undefined });
  t.equal(a.socket.source, 'socket_events');
  t.equal(a.waitedMs, 0);
});

t.test('the row arrives 20 s after the flow: attributed then; a row outside the skew does not match', async (t) => {
  const { c, attributed, unattributed } = harness();
  c.addHostAddress('web-1', '192.0.2.10');
  c.addFlow(conn('C2', '203.0.113.9', 40000, '192.0.2.10', 22), NOW);
  t.equal(c.pendingFlows, 1);
  // a snapshot of the same tuple an hour earlier (port reuse): outside start/end ± skew
  c.addSocket(
    socket(
      row(
        'web-1',
        'pos',
        {
          pid: '1',
          local_address: '192.0.2.10',
          local_port: '22',
          remote_address: '203.0.113.9',
          remote_port: '40000',
          family: '2',
          protocol: '6',
        },
        T - 3600,
      ),
    ),
    NOW + 10_000,
  );
  t.equal(attributed.length, 0, 'a row an hour off is not this flow');
  c.addSocket(
    socket(
      row('web-1', 'pack/net/process_open_sockets', {
        pid: '812',
        socket: '33',
        family: '2',
        protocol: '6',
        local_address: '192.0.2.10',
        local_port: '22',
        remote_address: '203.0.113.9',
        remote_port: '40000',
        path: '/usr/sbin/sshd',
        name: 'sshd',
        cmdline: 'sshd: alice [priv]',
        uid: '0',
        username: 'root',
      }),
    ),
    NOW + 20_000,
  );
  t.equal(attributed.length, 1);
  t.equal(attributed[0].direction, 'inbound');
  t.equal(attributed[0].waitedMs, 20_000);
  t.equal(attributed[0].process.commandLine, 'sshd: alice [priv]');
  t.equal(attributed[0].process.userName, 'root');
  c.expire(NOW + 10 * 60_000);
  t.equal(unattributed.length, 0, 'an attributed flow is not reported again');
  t.equal(c.pendingFlows, 0);
});

t.test('IPv6 and a two-address host: a wildcard listener explains flows to either address', async (t) => {
  const { c, attributed } = harness();
  for (const address of ['192.0.2.10', '2001:db8::10', '127.0.0.1', 'fe80::1%eth0']) c.addHostAddress('web-1', normalAddress(address)!);
  t.same(c.host('web-1')!.addresses, ['192.0.2.10', '2001:db8::10', 'fe80::1'], 'loopback is nobody’s address');
  c.addSocket(
    socket(
      row('web-1', 'listening_ports', {
        pid: '900',
        port: '443',
        protocol: '6',
        family: '10',
        address: '::',
        fd: '6',
        socket: '1',
        path: '',
      }),
    ),
    NOW,
  );
  c.addFlow(conn('C6', '2001:db8:ffff::5', 50123, '2001:DB8:0::10', 443), NOW);
  c.addFlow(conn('C4', '203.0.113.20', 50124, '192.0.2.10', 443), NOW);
  c.addFlow(conn('C7', '::ffff:203.0.113.21', 50125, '::ffff:192.0.2.10', 443), NOW);
  t.same(
    attributed.map((a) => [a.flow.uid, a.host.name, a.direction, a.process.pid, a.socket.source]),
    [
      ['C6', 'web-1', 'inbound', 900, 'listening_ports'],
      ['C4', 'web-1', 'inbound', 900, 'listening_ports'],
      ['C7', 'web-1', 'inbound', 900, 'listening_ports'],
    ],
  );
});

t.test('a UDP client: the bound socket on the originator side explains a DNS flow', async (t) => {
  const { c, attributed } = harness();
  c.addHostAddress('ws-7', '198.51.100.7');
  c.addFlow(conn('CD', '198.51.100.7', 53530, '192.0.2.53', 53, 'udp'), NOW);
  c.addSocket(
    socket(
      row('ws-7', 'pos', {
        pid: '611',
        family: '2',
        protocol: '17',
        local_address: '0.0.0.0',
        local_port: '53530',
        remote_address: '0.0.0.0',
        remote_port: '0',
        name: 'systemd-resolve',
        path: '/lib/systemd/systemd-resolved',
      }),
    ),
    NOW + 1000,
  );
  t.equal(attributed.length, 1);
  t.equal(attributed[0].direction, 'outbound');
  t.equal(attributed[0].process.name, 'systemd-resolve');
});

t.test('unexplained flows: a known host is reported once the window passed, an unknown pair is not', async (t) => {
  const { c, unattributed } = harness({ windowMs: 60_000 });
  c.addHostAddress('ws-7', '198.51.100.7');
  c.addFlow(conn('CU', '198.51.100.7', 51515, '203.0.113.66', 8080), NOW);
  c.addFlow(conn('CX', '10.9.9.9', 1000, '10.9.9.10', 80), NOW);
  c.expire(NOW + 59_999);
  t.equal(unattributed.length, 0, 'not before the window ends');
  c.expire(NOW + 60_000);
  t.same(
    unattributed.map((u) => [u.flow.uid, u.host.name, u.direction, u.reason]),
    [['CU', 'ws-7', 'outbound', 'no-socket-row']],
  );
  t.equal(c.counters.unrelated, 1);
  t.equal(c.pendingFlows, 0);
});

t.test('duplicates: a repeated conn record and repeated socket rows are taken once', async (t) => {
  const { c, attributed } = harness();
  const r = socket(connectEvent('ws-7', 4242, '/usr/bin/curl', '198.51.100.7', 51000, '203.0.113.50', 443));
  c.addSocket(r, NOW);
  c.addSocket(r, NOW + 1);
  t.equal(c.trackedSockets, 1, 'one entry per socket');
  c.addFlow(conn('C1', '198.51.100.7', 51000, '203.0.113.50', 443), NOW);
  c.addFlow(conn('C1', '198.51.100.7', 51000, '203.0.113.50', 443), NOW);
  c.addHostAddress('ws-7', '198.51.100.7');
  c.addFlow(conn('C9', '198.51.100.7', 51999, '203.0.113.50', 443), NOW);
  c.addFlow(conn('C9', '198.51.100.7', 51999, '203.0.113.50', 443), NOW);
  t.equal(attributed.length, 1);
  t.equal(c.counters.duplicateFlows, 2);
  t.equal(c.pendingFlows, 1);
});

t.test('restart: a pending flow survives the snapshot and is attributed after, once', async (t) => {
  const before = harness();
  before.c.addHostAddress('ws-7', '198.51.100.7');
  before.c.addFlow(conn('CR', '198.51.100.7', 52000, '203.0.113.50', 443), NOW);
  before.c.addSocket(socket(connectEvent('ws-7', 1, '/bin/x', '198.51.100.7', 52001, '203.0.113.50', 443)), NOW);
  before.c.addFlow(conn('CP', '198.51.100.7', 52001, '203.0.113.50', 443), NOW);
  before.c.addFlow(conn('CN', '10.9.9.9', 1000, '10.9.9.10', 80), NOW);
  const state = JSON.parse(JSON.stringify(before.c.snapshot()));
  t.same(
    state.pending.map((p: { flow: { uid: string } }) => p.flow.uid),
    ['CR'],
    'a pending flow of no known host is not checkpointed',
  );
  const after = harness();
  after.c.restore(state, NOW + 30_000);
  after.c.addFlow(conn('CP', '198.51.100.7', 52001, '203.0.113.50', 443), NOW + 30_000);
  t.equal(after.c.counters.duplicateFlows, 1, 'published before the restart: not again');
  after.c.addSocket(socket(connectEvent('ws-7', 77, '/usr/bin/wget', '198.51.100.7', 52000, '203.0.113.50', 443)), NOW + 31_000);
  t.same(
    after.attributed.map((a) => [a.flow.uid, a.process.pid]),
    [['CR', 77]],
  );
  after.c.expire(NOW + 10 * 60_000);
  t.equal(after.unattributed.length, 0);
});

t.test('bounded memory: 10,000 sockets from one host in one batch, per-host and global eviction counted', async (t) => {
  const { c, attributed } = harness({ maxSocketsPerHost: 4000, maxSockets: 6000 });
  const started = performance.now();
  for (let i = 0; i < 10_000; i++)
    c.addSocket(socket(connectEvent('noisy', i, '/bin/spam', '198.51.100.99', 20000 + (i % 40000), '203.0.113.1', 1 + i)), NOW);
  t.ok(performance.now() - started < 5000, 'a batch of 10,000 rows is taken in well under 5 s');
  t.equal(c.trackedSockets, 4000);
  t.equal(c.counters.socketsEvictedHost, 6000);
  for (let i = 0; i < 3000; i++)
    c.addSocket(socket(connectEvent('quiet', i, '/bin/ok', '198.51.100.5', 30000 + i, '203.0.113.2', 443)), NOW);
  t.equal(c.trackedSockets, 6000);
  t.equal(c.counters.socketsEvictedGlobal, 1000, 'the global bound pushes out the least recently seen');
  c.addFlow(conn('CQ', '198.51.100.5', 32999, '203.0.113.2', 443), NOW);
  t.equal(attributed.length, 1, 'the newest rows still join');
  c.expire(NOW + LIMITS.socketTtlMs);
  t.equal(c.trackedSockets, 0, 'rows expire after the TTL');
  t.equal(c.counters.socketsExpired, 6000);
});

t.test('pending flows are bounded: the oldest is reported as evicted', async (t) => {
  const { c, unattributed } = harness({ maxPending: 2 });
  c.addHostAddress('ws-7', '198.51.100.7');
  for (const uid of ['A', 'B', 'C']) c.addFlow(conn(uid, '198.51.100.7', 1000 + uid.charCodeAt(0), '203.0.113.3', 80), NOW);
  t.same(
    unattributed.map((u) => [u.flow.uid, u.reason]),
    [['A', 'evicted']],
  );
  t.equal(c.counters.pendingEvicted, 1);
  t.equal(c.pendingFlows, 2);
});

t.test('hostile rows and records: rejected with a reason, nothing else lost', async (t) => {
  const bad: [Record<string, unknown>, string][] = [
    [
      row('h', 'q', { pid: '1', local_address: '10.0.0.1', local_port: 'eighty', remote_address: '10.0.0.2', remote_port: '80' }),
      'bad-port',
    ],
    [
      row('h', 'q', { pid: '1', local_address: '10.0.0.1', local_port: '70000', remote_address: '10.0.0.2', remote_port: '80' }),
      'bad-port',
    ],
    [row('h', 'q', { pid: '1', local_address: '10.0.0.1', local_port: '1', remote_address: '10.0.0.2', remote_port: '-5' }), 'bad-port'],
    [
      row('h', 'q', { pid: '1', local_address: 'not-an-ip', local_port: '1', remote_address: '10.0.0.2', remote_port: '80' }),
      'bad-address',
    ],
    [
      row('h', 'q', { pid: '1', local_address: '10.0.0.1', local_port: '1', remote_address: '999.1.1.1', remote_port: '80' }),
      'bad-address',
    ],
    [row('h', 'q', { pid: '1', local_address: '10.1', local_port: '1', remote_address: '10.0.0.2', remote_port: '80' }), 'bad-address'],
    [
      row('h', 'q', { pid: '1', local_address: { toString: 1 }, local_port: '1', remote_address: '10.0.0.2', remote_port: '80' }),
      'bad-address',
    ],
    [row('h', 'q', { pid: 'x', local_address: '10.0.0.1', local_port: '1', remote_address: '10.0.0.2', remote_port: '80' }), 'no-pid'],
    [{ name: 'q', columns: { pid: '1', local_address: '10.0.0.1', local_port: '1' } }, 'no-host'],
    [row('h', 'q', { interface: 'eth0', address: '10.0.0.300' }), 'bad-address'],
  ];
  for (const [r, reason] of bad) t.same(rowFact(r, NOW), { kind: 'rejected', reason }, JSON.stringify(r.columns));
  t.same(
    rowFact(row('h', 'q', { pid: '1', family: '1', local_address: '', local_port: '0', path: '/run/x.sock' }), NOW),
    { kind: 'ignored' },
    'AF_UNIX',
  );
  t.same(rowFact(row('h', 'processes', { pid: '1', name: 'init' }), NOW), { kind: 'ignored' }, 'not a socket');
  t.same(rowFact({ name: 'q', columns: 'nope' }, NOW), { kind: 'ignored' });
  const huge = socket(
    row('h', 'q', {
      pid: '1',
      local_address: '10.0.0.1',
      local_port: '1',
      remote_address: '10.0.0.2',
      remote_port: '80',
      cmdline: 'x'.repeat(1 << 20),
      name: 'n'.repeat(5000),
      path: `/${'p'.repeat(100_000)}`,
    }),
  );
  t.same(
    [huge.process.commandLine!.length, huge.process.name!.length, huge.process.executable!.length],
    [8192, 256, 4096],
    'oversized columns are cut, the row kept',
  );
  for (const [rec, reason] of [
    [{ ts: T, 'id.orig_h': '1.2.3.4', 'id.orig_p': 1, 'id.resp_h': '1.2.3.5', 'id.resp_p': 2 }, 'no-uid'],
    [{ ts: T, uid: 'C', 'id.orig_h': '1.2.3.4', 'id.orig_p': 'x', 'id.resp_h': '1.2.3.5', 'id.resp_p': 2 }, 'bad-port'],
    [{ ts: T, uid: 'C', 'id.orig_h': 'a.b.c.d', 'id.orig_p': 1, 'id.resp_h': '1.2.3.5', 'id.resp_p': 2 }, 'bad-address'],
    [{ ts: 'yesterday', uid: 'C', 'id.orig_h': '1.2.3.4', 'id.orig_p': 1, 'id.resp_h': '1.2.3.5', 'id.resp_p': 2 }, 'bad-time'],
  ] as const)
    t.equal(flowOf({ ...rec }), reason);
  t.same(
    [portOf('65535'), portOf(65536), portOf('1e3'), portOf(' 80'), portOf(-1), portOf(8.5)],
    [65535, undefined, undefined, undefined, undefined, undefined],
  );
  t.same(
    [normalAddress('::FFFF:10.0.0.5'), normalAddress('2001:0DB8::0001'), normalAddress('0x7f.1'), normalAddress('a'.repeat(100))],
    ['10.0.0.5', '2001:db8::1', undefined, undefined],
  );
  // the nested id form Zeek's JSON writer uses without flattening
  const nested = flowOf({ ts: T, uid: 'N', id: { orig_h: '1.2.3.4', orig_p: 1, resp_h: '1.2.3.5', resp_p: 2 }, proto: 'tcp' });
  t.equal(typeof nested === 'object' && nested.orig, '1.2.3.4');
});
