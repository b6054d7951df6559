import { HOUR, MINUTE, SECOND, Sim, type CaptureEvent, type EventFields } from './sim.js';
import type { Label } from './scenario.js';

/**
 * The second labelled stream, written from the MQTT specifications and public reports of MQTT
 * attacks — not from the rules' documented minimums (bench/detect/scenario.ts is built from
 * those). Another producer: its own reason texts (HiveMQ / EMQX style), MQTT 5 reason codes for
 * half the fleet (3.1.1 codes 4 and 5 for the rest, MQTT-3.1.1 §3.2.2.3, MQTT-5.0 §3.2.2.2),
 * flattened keys (`"event.action"`) on every other event, as some log shippers re-emit them.
 *
 * Normal traffic: a Sparkplug B plant (`spBv1.0/<group>/NDATA|DDATA/<node>`, NBIRTH/DBIRTH at
 * connect, the spec's rebirth after a reconnect), a cellular fleet behind one carrier-grade NAT
 * whose modems drop and reconnect every few minutes to hours, dashboards subscribing to `+`
 * filters, an MQTT 5 web app reconnecting after token expiry.
 *
 * Attacks, each from a public report (rates as the tools or write-ups describe them):
 * - dictionary attack on one account at tool speed (ncrack mqtt module, mqtt-pwn `bruteforce`:
 *   one CONNECT per round trip, 5–30 a second), a slow one (1 every 4 s), and a "low and slow"
 *   one (1 every 15 s, as fail2ban evasion is described);
 * - default-credential spraying (Mirai-style user:password lists: admin/admin, guest/guest, …),
 *   one attempt per pair, each user once;
 * - the discovery scan of Shodan-style crawlers and mqtt-pwn `discovery`: anonymous CONNECT,
 *   SUBSCRIBE `#` and `$SYS/#`, DISCONNECT (Avast 2018, Trend Micro 2018 "The Fragility of
 *   Industrial IoT's Data Backbone");
 * - topic enumeration by subscribing to a word list of topics (mqtt-pwn, MQTTSA);
 * - client-id takeover (MQTT-3.1.4-2: a second CONNECT with the same id ends the first
 *   session): two clients kicking each other off every few seconds (Trend Micro 2018);
 * - connection flood (MQTTSA, "MQTT-Flood" DoS tools): hundreds of CONNECTs a second;
 * - publish flood from a compromised device (MQTTSA malicious publish), at 20–100 a second;
 * - oversized payload (MQTTSA "payload size" test; the spec allows 256 MB);
 * - ACL probing: publishing to other devices' command topics (Sparkplug NCMD/DCMD hijack).
 */

export const SPEC_START = Date.parse('2026-04-06T00:00:00.000Z');
/** Alerts before this are not scored (the first-seen rules learn). */
export const SPEC_LEARNING = HOUR;

/** Another producer's reason texts for a refused CONNECT, by code (what they say is not mqprobe's vocabulary). */
const REFUSAL_TEXT: Record<number, string> = {
  4: 'Connection Refused: bad user name or password',
  5: 'Connection Refused: not authorized',
  0x86: 'BAD_USER_NAME_OR_PASSWORD',
  0x87: 'NOT_AUTHORIZED',
  0x8c: 'BAD_AUTHENTICATION_METHOD',
};

/** Default credentials the Mirai family and its successors try. */
const DEFAULT_USERS = ['admin', 'root', 'guest', 'user', 'support', 'test', 'mqtt', 'pi', 'ubnt', 'operator', 'service', 'default'];
const WORDLIST = [
  'status',
  'temp',
  'cmd',
  'config',
  'firmware',
  'debug',
  'alarm',
  'door',
  'light',
  'lock',
  'camera',
  'gps',
  'power',
  'valve',
];

interface Options {
  seed: number;
  hours: number;
  /** Sparkplug edge nodes (each with 4 devices) and cellular modems. */
  nodes: number;
  modems: number;
  attacks: boolean;
}

export function buildSpecScenario(o: Options): { sim: Sim; labels: Label[] } {
  const end = SPEC_START + o.hours * HOUR;
  const sim = new Sim(o.seed, SPEC_START, end);
  const r = sim.rng;
  const labels: Label[] = [];
  const refuse = (f: EventFields, code: number) => sim.emit('connection-refused', { ...f, reasonCode: code, reason: REFUSAL_TEXT[code] });
  const mqtt5 = (n: number) => n % 2 === 0;

  // Sparkplug B edge nodes: NBIRTH + DBIRTHs at connect, NDATA/DDATA on report by exception
  for (let n = 0; n < o.nodes; n++) {
    const f = { ip: `10.40.${n >> 6}.${(n & 63) + 10}`, user: `edge-${n}`, clientId: `edge-node-${n}` };
    const group = `plant${n % 3}`;
    const birth = () => {
      sim.emit('client-connected', { ...f, reasonCode: 0 });
      sim.emit('subscription-granted', { ...f, subscriptions: [{ topic: `spBv1.0/${group}/NCMD/${f.clientId}`, qos: 0, granted_qos: 0 }] });
      sim.emit('publish-received', { ...f, topic: `spBv1.0/${group}/NBIRTH/${f.clientId}`, size: 900, qos: 0 });
      for (let d = 0; d < 4; d++)
        sim.emit('publish-received', { ...f, topic: `spBv1.0/${group}/DBIRTH/${f.clientId}/d${d}`, size: 600, qos: 0 });
    };
    const data = () => {
      const d = r.int(0, 4);
      const topic = d === 4 ? `spBv1.0/${group}/NDATA/${f.clientId}` : `spBv1.0/${group}/DDATA/${f.clientId}/d${d}`;
      sim.emit('publish-received', { ...f, topic, size: Math.round(r.uniform(40, 220)), qos: 0 });
      sim.at(sim.now + r.exp(4 * SECOND), data);
    };
    // a node restarts now and then: death certificate (will), rebirth
    const restart = () => {
      sim.emit('client-disconnected', { ...f, reason: 'Keep Alive timeout' });
      sim.at(sim.now + r.uniform(5, 60) * SECOND, birth);
      sim.at(sim.now + r.exp(8 * HOUR), restart);
    };
    sim.at(SPEC_START + r.uniform(0, MINUTE), () => {
      birth();
      data();
    });
    sim.at(SPEC_START + r.exp(8 * HOUR), restart);
  }

  // cellular modems behind one carrier-grade NAT: drop and reconnect, report every 1–15 min
  const CGNAT = '100.72.0.1';
  for (let m = 0; m < o.modems; m++) {
    const f = { ip: CGNAT, user: 'fleet', clientId: `modem-${m.toString(16).padStart(6, '0')}` };
    const report = () => {
      sim.emit('publish-received', { ...f, topic: `fleet/${f.clientId}/gps`, size: Math.round(r.uniform(60, 120)), qos: 1 });
      sim.at(sim.now + r.uniform(1, 15) * MINUTE, report);
    };
    const session = () => {
      sim.emit('client-connected', { ...f, reasonCode: 0 });
      const down = sim.now + r.exp(2 * HOUR);
      sim.at(down, () => {
        sim.emit('client-disconnected', { ...f, reason: 'Socket error' });
        sim.at(sim.now + r.uniform(2, 90) * SECOND, session);
      });
    };
    sim.at(SPEC_START + r.uniform(0, 5 * MINUTE), () => {
      session();
      report();
    });
  }

  // dashboards (MQTT 5 web app): token expiry every 15 min ends the session; one in ten logins mistyped
  for (let k = 0; k < 4; k++) {
    const f = { ip: `172.16.5.${20 + k}`, user: `operator${k}`, clientId: `dashboard-${k}-${r.hex(6)}` };
    const login = () => {
      if (r.chance(0.1)) refuse(f, 0x86);
      sim.at(sim.now + r.uniform(3, 12) * SECOND, () => {
        sim.emit('client-connected', { ...f, reasonCode: 0 });
        sim.emit('subscription-granted', { ...f, subscriptions: [{ topic: `spBv1.0/plant${k % 3}/+/#`, qos: 0, granted_qos: 0 }] });
      });
      sim.at(sim.now + 15 * MINUTE, login);
    };
    sim.at(SPEC_START + r.uniform(0, 10 * MINUTE), login);
  }

  if (o.attacks) injectSpecAttacks(sim, labels, refuse, mqtt5, o.nodes, end);
  return { sim, labels };
}

type Refuse = (f: EventFields, code: number) => void;

function injectSpecAttacks(sim: Sim, labels: Label[], refuse: Refuse, mqtt5: (n: number) => boolean, nodes: number, end: number): void {
  const r = sim.rng;
  const kinds = Object.keys(SPEC_ATTACKS);
  const repeats = 4;
  const slots = kinds.length * repeats;
  const span = end - SPEC_START - 2 * SPEC_LEARNING;
  let slot = 0;
  for (let rep = 0; rep < repeats; rep++)
    for (const kind of kinds) {
      const n = slot;
      const at = SPEC_START + 2 * SPEC_LEARNING + ((slot++ + r.uniform(0.1, 0.6)) / slots) * span;
      sim.at(at, () => {
        const made = SPEC_ATTACKS[kind]({ sim, refuse, n, ip: `203.0.113.${n & 255}`, code: mqtt5(n) ? 0x86 : 4, nodes });
        labels.push({ kind: made.rule, intensity: 1, entity: made.entity, start: made.start, end: made.end, due: made.due });
      });
    }
}

interface Ctx {
  sim: Sim;
  refuse: Refuse;
  n: number;
  /** The attacker's address (TEST-NET-3: nobody legitimate uses it). */
  ip: string;
  /** The credential refusal code of this attacker's protocol version. */
  code: number;
  nodes: number;
}

interface Made extends Omit<Label, 'kind' | 'intensity'> {
  /** The rule that should catch it. */
  rule: string;
}

/** `count` actions at the given gaps from now; `due` is the time of the event at index `dueAt` (a fact of the attack, not a rule's minimum). */
function series(sim: Sim, gaps: () => number, count: number, make: (i: number) => void): { start: number; end: number; due: number } {
  const start = sim.now;
  let t = start;
  for (let i = 0; i < count; i++) {
    const at = t;
    sim.at(at, () => make(i));
    if (i < count - 1) t += gaps();
  }
  return { start, end: t, due: start };
}

const SPEC_ATTACKS: Record<string, (c: Ctx) => Made> = {
  'dictionary-fast': ({ sim, refuse, ip, code, n }) => ({
    rule: 'auth-brute-force',
    entity: { ip },
    ...series(
      sim,
      () => 1000 / sim.rng.uniform(5, 30),
      200,
      (i) => refuse({ ip, user: 'admin', clientId: `mqtt-pwn-${n}-${i}` }, code),
    ),
  }),
  'dictionary-slow': ({ sim, refuse, ip, code }) => ({
    rule: 'auth-brute-force',
    entity: { ip },
    ...series(
      sim,
      () => 4000,
      60,
      () => refuse({ ip, user: 'admin', clientId: 'paho123' }, code),
    ),
  }),
  // under any per-minute threshold on purpose (fail2ban evasion as the write-ups describe it): 1 every 15 s for 30 min
  'dictionary-low-and-slow': ({ sim, refuse, ip, code }) => ({
    rule: 'auth-brute-force',
    entity: { ip },
    ...series(
      sim,
      () => 15_000,
      120,
      () => refuse({ ip, user: 'admin', clientId: 'paho456' }, code),
    ),
  }),
  'default-credential-spray': ({ sim, refuse, ip, n }) => ({
    rule: 'credential-stuffing',
    entity: { ip },
    // 3.1.1 bots: code 4 or 5 by broker; each user once
    ...series(
      sim,
      () => sim.rng.uniform(0.2, 3) * SECOND,
      DEFAULT_USERS.length,
      (i) => refuse({ ip, user: DEFAULT_USERS[i], clientId: `${n}${i}` }, n % 2 ? 5 : 4),
    ),
  }),
  'discovery-scan': ({ sim, ip, n }) => {
    const f = { ip, clientId: `scanner-${n}` };
    return {
      rule: 'wildcard-subscription',
      entity: { clientId: f.clientId },
      ...series(
        sim,
        () => 200,
        3,
        (i) => {
          if (i === 0) sim.emit('client-connected', { ...f, reasonCode: 0 });
          else sim.emit('subscription-granted', { ...f, subscriptions: [{ topic: i === 1 ? '#' : '$SYS/#', qos: 0, granted_qos: 0 }] });
        },
      ),
    };
  },
  'topic-enumeration': ({ sim, ip, n }) => {
    const f = { ip, clientId: `enum-${n}` };
    return {
      rule: 'topic-scan',
      entity: { clientId: f.clientId },
      ...series(
        sim,
        () => sim.rng.uniform(50, 400),
        WORDLIST.length * 3,
        (i) =>
          sim.emit(i % 4 === 3 ? 'subscription-denied' : 'subscription-granted', {
            ...f,
            subscriptions: [
              {
                topic: `${['home', 'device', 'sensor'][i % 3]}/${WORDLIST[i % WORDLIST.length]}`,
                qos: 0,
                granted_qos: i % 4 === 3 ? 0x87 : 0,
              },
            ],
          }),
      ),
    };
  },
  'client-id-takeover': ({ sim, ip, n, nodes }) => {
    const victim = `edge-node-${n % nodes}`;
    return {
      rule: 'client-flapping',
      entity: { clientId: victim },
      // the attacker and the victim's auto-reconnect take the session from each other
      ...series(
        sim,
        () => sim.rng.uniform(2, 8) * SECOND,
        40,
        (i) => sim.emit('client-connected', { ip: i % 2 ? ip : `10.40.0.${(n % nodes) + 10}`, clientId: victim, reasonCode: 0 }),
      ),
    };
  },
  'connection-flood': ({ sim, ip, n }) => ({
    rule: 'connection-storm',
    entity: { ip },
    ...series(
      sim,
      () => sim.rng.exp(1000 / 300),
      1500,
      (i) => sim.emit('client-connected', { ip, clientId: `flood${n}-${i}`, reasonCode: 0 }),
    ),
  }),
  'publish-flood': ({ sim, n, nodes }) => {
    const f = { ip: `10.40.0.${(n % nodes) + 10}`, user: `edge-${n % nodes}`, clientId: `edge-node-${n % nodes}` };
    const rate = sim.rng.uniform(20, 100);
    return {
      rule: 'publish-rate',
      entity: { clientId: f.clientId },
      ...series(
        sim,
        () => 1000 / rate,
        Math.round(rate * 30),
        () => sim.emit('publish-received', { ...f, topic: `spBv1.0/plant${(n % nodes) % 3}/NDATA/${f.clientId}`, size: 80, qos: 0 }),
      ),
    };
  },
  'oversized-payload': ({ sim, n, nodes }) => {
    const node = n % nodes;
    const f = { ip: `10.40.0.${node + 10}`, user: `edge-${node}`, clientId: `edge-node-${node}` };
    const topic = `spBv1.0/plant${node % 3}/DDATA/${f.clientId}/d1`;
    return {
      rule: 'payload-size',
      entity: { topic },
      ...series(
        sim,
        () => 0,
        1,
        () => sim.emit('publish-received', { ...f, topic, size: 2 ** sim.rng.int(16, 24), qos: 0 }),
      ),
    };
  },
  'command-hijack': ({ sim, n, nodes }) => {
    const node = n % nodes;
    const f = { ip: `10.40.0.${node + 10}`, user: `edge-${node}`, clientId: `edge-node-${node}` };
    return {
      rule: 'acl-denials',
      entity: { clientId: f.clientId },
      ...series(
        sim,
        () => sim.rng.uniform(0.5, 3) * SECOND,
        25,
        (i) => sim.emit('publish-denied', { ...f, topic: `spBv1.0/plant${i % 3}/DCMD/edge-node-${(node + 1 + i) % nodes}/d0`, size: 40 }),
      ),
    };
  },
};

/** Every other event with flattened keys (`"event.action"`), as some shippers re-emit ECS. */
export function* flattenSome(events: Iterable<CaptureEvent>): Generator<CaptureEvent> {
  let i = 0;
  for (const e of events) {
    if (i++ % 2 === 0) {
      yield e;
      continue;
    }
    const flat: CaptureEvent = { '@timestamp': e['@timestamp'] };
    for (const [k, v] of Object.entries(e))
      if (k !== '@timestamp' && typeof v === 'object' && v !== null && !Array.isArray(v))
        for (const [k2, v2] of Object.entries(v)) flat[`${k}.${k2}`] = v2;
    yield flat;
  }
}
