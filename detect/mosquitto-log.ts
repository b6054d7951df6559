/**
 * Mosquitto's own log (`log_dest file`, stdout, syslog text) → capture events, so the detectors
 * can judge a Mosquitto broker before it is replaced (docs/detection.md, "Replaying Mosquitto's log").
 * The lines are Mosquitto 2.0's (checked against the real 2.0.11 in test/detect/mosquitto-replay.test.ts);
 * what a line does not say (the user of a refused login, whether a subscription was denied) no event says.
 */

/** A capture event as the detectors read it (docs/capture-events.md), made from log lines. */
export type LogEvent = Record<string, unknown> & { '@timestamp': string };

/** Which kinds of line the log had: what it can show depends on its `log_type` lines. */
export interface LogCoverage {
  timestamps: boolean;
  connects: number;
  refusals: number;
  subscribes: number;
  publishes: number;
  disconnects: number;
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

/** Pieces of a `log_timestamp_format` the parser reads back; other conversions match any text. */
const FIELDS: Record<string, [string, string | undefined]> = {
  Y: ['(\\d{4})', 'Y'],
  y: ['(\\d{2})', 'y'],
  m: ['(\\d{1,2})', 'm'],
  d: ['(\\d{1,2})', 'd'],
  e: ['\\s?(\\d{1,2})', 'd'],
  H: ['(\\d{1,2})', 'H'],
  M: ['(\\d{2})', 'M'],
  S: ['(\\d{2})', 'S'],
  s: ['(\\d+)', 's'],
  b: ['([A-Za-z]{3})', 'b'],
  h: ['([A-Za-z]{3})', 'b'],
  B: ['([A-Za-z]+)', 'b'],
  z: ['([+-]\\d{4})', 'z'],
  F: ['(\\d{4})-(\\d{1,2})-(\\d{1,2})', 'F'],
  T: ['(\\d{1,2}):(\\d{2}):(\\d{2})', 'T'],
  '%': ['%', undefined],
};

/** A parser of timestamps written with `log_timestamp_format` (local time, as Mosquitto writes them). */
export function timestampParser(format: string): (line: string) => { time: number; rest: string } | undefined {
  const names: string[] = [];
  let re = '^';
  for (let i = 0; i < format.length; i++) {
    const c = format[i];
    if (c === '%' && i + 1 < format.length) {
      const f = FIELDS[format[++i]];
      if (!f) {
        re += '.*?';
        continue;
      }
      re += f[0];
      if (f[1] === 'F') names.push('Y', 'm', 'd');
      else if (f[1] === 'T') names.push('H', 'M', 'S');
      else if (f[1]) names.push(f[1]);
    } else re += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  const regex = new RegExp(`${re}: `);
  return (line) => {
    const m = regex.exec(line);
    if (!m) return undefined;
    const v: Record<string, string> = {};
    names.forEach((n, i) => (v[n] = m[i + 1]));
    const rest = line.slice(m[0].length);
    if (v.s !== undefined) return { time: Number(v.s) * 1000, rest };
    const year = v.Y !== undefined ? Number(v.Y) : v.y !== undefined ? 2000 + Number(v.y) : new Date().getFullYear();
    const month = v.m !== undefined ? Number(v.m) - 1 : v.b !== undefined ? MONTHS.indexOf(v.b.slice(0, 3).toLowerCase()) : 0;
    const d = new Date(year, month, Number(v.d ?? 1), Number(v.H ?? 0), Number(v.M ?? 0), Number(v.S ?? 0));
    let time = d.getTime();
    if (v.z !== undefined) {
      const off = (v.z[0] === '-' ? -1 : 1) * (Number(v.z.slice(1, 3)) * 60 + Number(v.z.slice(3, 5)));
      time = Date.UTC(year, month, Number(v.d ?? 1), Number(v.H ?? 0), Number(v.M ?? 0), Number(v.S ?? 0)) - off * 60_000;
    }
    return Number.isNaN(time) || month < 0 ? undefined : { time, rest };
  };
}

/** Mosquitto's default prefix (`1733355000: `), or an ISO-like date `Date.parse` reads. */
function defaultTimestamp(line: string): { time: number; rest: string } | undefined {
  const m = /^(\d{9,11}): /.exec(line);
  if (m) return { time: Number(m[1]) * 1000, rest: line.slice(m[0].length) };
  const sep = line.indexOf(': ', 8);
  if (sep < 0 || sep > 40) return undefined;
  const prefix = line.slice(0, sep);
  if (!/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$/.test(prefix)) return undefined;
  const t = Date.parse(prefix.replace(' ', 'T'));
  return Number.isNaN(t) ? undefined : { time: t, rest: line.slice(sep + 2) };
}

const CONNECTED = /^New client connected from (.+):(\d+) as (.*) \((p\d+[^)]*)\)\.$/;
const NEW_CONNECTION = /^New connection from (.+):(\d+) on port \d+\.$/;
const CONNACK = /^Sending CONNACK to (.+) \((\d+), (\d+)\)$/;
const REFUSED = /^Client <unknown> disconnected(?:, |: | due to )(.+?)\.?$/;
const GONE =
  /^Client (.+?) (disconnected|closed its connection|has exceeded timeout, disconnecting|already connected, closing old connection|disconnected due to .+|disconnected, .+)\.$/;
const SUB_DEBUG = /^Received SUBSCRIBE from (.+)$/;
const SUB_TOPIC = /^\t(.+) \(QoS (\d)\)$/;
const SUB_LINE = /^(\S+) ([0-2]) (.+)$/;
const PUBLISH = /^(Received|Denied) PUBLISH from (.+?) \(d\d, q(\d), r\d, m\d+, '(.*)', \.\.\. \((\d+) bytes\)\)$/;

const DISCONNECT_REASON: Record<string, string> = {
  disconnected: 'client-disconnect',
  'closed its connection': 'socket-closed',
  'has exceeded timeout, disconnecting': 'keepalive-timeout',
  'already connected, closing old connection': 'session-taken-over',
};

/** The longest line read; beyond it the line is cut, skipped and counted (a log line is a few hundred bytes). */
export const MAX_LINE = 64 * 1024;

/**
 * Turns lines into events, in order. One instance per file: it follows a connection from its
 * `New connection` line to its CONNACK, as Mosquitto logs them one after the other.
 */
export class MosquittoLogReader {
  readonly coverage: LogCoverage = { timestamps: false, connects: 0, refusals: 0, subscribes: 0, publishes: 0, disconnects: 0 };
  /** Lines without the timestamp prefix among stamped ones (they take the time of the line before). */
  readonly undated: number[] = [];
  /** Lines dated more than a day after now: skipped. */
  readonly future: number[] = [];
  private readonly parseTime: (line: string) => { time: number; rest: string } | undefined;
  /** Connections opened and not yet a client: the newest is the one a refusal is about. */
  private pending: { ip: string; port: number }[] = [];
  private refusedTo?: { ip: string; code: number };
  private clients = new Map<string, { ip?: string; user?: string }>();
  private subscribing?: string;
  /** Subscriptions read from debug lines, so the `subscribe` type line repeating one is not counted twice. */
  private subscribed = new Set<string>();
  private lastTime = 0;
  private lineNo = 0;
  private readonly now: number;

  constructor(
    private readonly file: string,
    opts: { timestampFormat?: string; now?: number; fallbackTime: number },
  ) {
    this.parseTime = opts.timestampFormat ? timestampParser(opts.timestampFormat) : defaultTimestamp;
    this.now = opts.now ?? Date.now();
    this.lastTime = opts.fallbackTime;
  }

  /** The events of one line (most lines give none). */
  read(raw: string, lineNo: number): LogEvent[] {
    this.lineNo = lineNo;
    const stamped = this.parseTime(raw);
    let text = raw;
    if (stamped) {
      if (stamped.time > this.now + 86_400_000) {
        this.future.push(this.lineNo);
        return [];
      }
      this.coverage.timestamps = true;
      this.lastTime = stamped.time;
      text = stamped.rest;
    } else if (this.coverage.timestamps) {
      // a line without the prefix among stamped ones: a continuation or damage; its time is the last one
      this.undated.push(this.lineNo);
    }
    return this.interpret(text, this.lastTime);
  }

  private event(
    time: number,
    action: string,
    f: {
      ip?: string;
      port?: number;
      user?: string;
      clientId?: string;
      reason?: string;
      code?: number;
      topic?: string;
      size?: number;
      subscriptions?: unknown[];
    },
  ): LogEvent {
    const e: LogEvent = {
      '@timestamp': new Date(time).toISOString(),
      event: { kind: 'event', action, dataset: 'mosquitto.log', ...(f.reason ? { reason: f.reason } : {}) },
      log: { file: { path: this.file }, line: this.lineNo },
    };
    if (f.ip) e.source = { ip: f.ip, ...(f.port ? { port: f.port } : {}) };
    if (f.user) e.user = { name: f.user };
    const mqtt: Record<string, unknown> = {};
    if (f.clientId !== undefined) mqtt.client_id = f.clientId;
    if (f.code !== undefined) mqtt.reason_code = f.code;
    if (f.topic !== undefined) mqtt.topic = f.topic;
    if (f.size !== undefined) mqtt.payload_size = f.size;
    if (f.subscriptions) mqtt.subscriptions = f.subscriptions;
    e.mqtt = mqtt;
    return e;
  }

  private interpret(text: string, time: number): LogEvent[] {
    let m: RegExpExecArray | null;
    if ((m = NEW_CONNECTION.exec(text))) {
      this.pending.push({ ip: m[1], port: Number(m[2]) });
      if (this.pending.length > 1000) this.pending.shift();
      return [];
    }
    if ((m = CONNECTED.exec(text))) {
      const [, ip, port, clientId, details] = m;
      this.pending = this.pending.filter((p) => !(p.ip === ip && p.port === Number(port)));
      const user = /(?:^|, )u'(.*)'(?:, |$)/.exec(details)?.[1];
      this.clients.set(clientId, { ip, user });
      if (this.clients.size > 100_000) this.clients.delete(this.clients.keys().next().value!);
      this.coverage.connects++;
      return [this.event(time, 'client-connected', { ip, port: Number(port), user, clientId, code: 0 })];
    }
    if ((m = CONNACK.exec(text))) {
      // a refused client has no id yet: Mosquitto names its address
      if (m[3] !== '0' && !this.clients.has(m[1])) this.refusedTo = { ip: m[1], code: Number(m[3]) };
      return [];
    }
    if ((m = REFUSED.exec(text))) {
      const auth = /not authori[sz]ed/.test(m[1]);
      const pending = this.pending.pop();
      const ip = this.refusedTo?.ip ?? pending?.ip;
      const code = this.refusedTo?.code ?? (auth ? 5 : undefined);
      this.refusedTo = undefined;
      this.coverage.refusals++;
      return [
        this.event(time, 'connection-refused', { ip, port: pending?.port, code, reason: auth ? 'not-authorized' : 'protocol-error' }),
      ];
    }
    if ((m = PUBLISH.exec(text))) {
      const [, how, clientId, qos, topic, size] = m;
      this.coverage.publishes++;
      const c = this.clients.get(clientId);
      const action = how === 'Received' ? 'publish-received' : 'publish-denied';
      return [{ ...this.event(time, action, { ip: c?.ip, user: c?.user, clientId, topic, size: Number(size) }), qos: Number(qos) }];
    }
    if ((m = SUB_DEBUG.exec(text))) {
      this.subscribing = m[1];
      return [];
    }
    if (this.subscribing !== undefined && (m = SUB_TOPIC.exec(text))) {
      this.subscribed.add(`${this.subscribing} ${m[2]} ${m[1]}`);
      return [this.subscription(time, this.subscribing, m[1], Number(m[2]))];
    }
    if ((m = GONE.exec(text))) {
      const [, clientId, what] = m;
      this.subscribing = undefined;
      this.coverage.disconnects++;
      const c = this.clients.get(clientId);
      return [this.event(time, 'client-disconnected', { ip: c?.ip, user: c?.user, clientId, reason: DISCONNECT_REASON[what] ?? 'error' })];
    }
    if (text.startsWith('Sending SUBACK to ')) {
      this.subscribing = undefined;
      return [];
    }
    if ((m = SUB_LINE.exec(text)) && this.clients.has(m[1])) {
      const key = `${m[1]} ${m[2]} ${m[3]}`;
      if (this.subscribed.delete(key)) return [];
      return [this.subscription(time, m[1], m[3], Number(m[2]))];
    }
    return [];
  }

  private subscription(time: number, clientId: string, topic: string, qos: number): LogEvent {
    this.coverage.subscribes++;
    const c = this.clients.get(clientId);
    return this.event(time, 'subscription-granted', {
      ip: c?.ip,
      user: c?.user,
      clientId,
      topic,
      subscriptions: [{ topic, qos, granted_qos: qos }],
    });
  }
}

/** What the detectors could not judge from these logs, one sentence each. */
export function blindSpots(c: LogCoverage): string[] {
  const out: string[] = [];
  if (!c.timestamps)
    out.push(
      'no timestamps (log_timestamp false): only rules about single events are run (wildcard-subscription, payload-size, threat-intel)',
    );
  if (c.connects === 0) out.push('no connection lines: log_type notice is off (or nobody connected)');
  if (c.subscribes === 0) out.push('no subscribe lines: log_type subscribe is off (or nobody subscribed)');
  if (c.publishes === 0)
    out.push(
      'no publish lines: log_type debug is off, so publish-rate, topic-rate, payload-size and acl-denials on publishes cannot be judged',
    );
  out.push(
    "Mosquitto's log does not name the user of a refused login: credential-stuffing cannot be judged; nor whether a subscription was denied",
  );
  return out;
}
