import { dayLevel, HOUR, MINUTE, SECOND, Sim, type EventFields } from './sim.js';

/**
 * A labelled capture stream: an IoT fleet behind site NATs (periodic telemetry with jitter and
 * daily variation, network blips with reconnects and store-and-forward flushes, a firmware
 * rollout that triples payload sizes, new devices provisioned, a misconfigured device retrying a
 * stale password, operators, a Zeek beat) with attacks of every detector's kind injected at
 * 1×, 2× and 10× the documented minimum intensity.
 */

export interface Label {
  /** The rule expected to catch it. */
  kind: string;
  intensity: number;
  /** The entities an alert about it names (any one matches). */
  entity: { ip?: string; clientId?: string; user?: string; topic?: string };
  start: number;
  end: number;
  /** When the attack had produced the documented minimum evidence: time to detect counts from here. */
  due: number;
}

export interface ScenarioOptions {
  seed: number;
  devices: number;
  hours: number;
  /** Whether to inject attacks (false: normal traffic only, for false alerts per hour). */
  attacks: boolean;
}

const SITE_SIZE = 50;
export const START = Date.parse('2026-03-02T00:00:00.000Z');
/** The rules learn during the first hour (first-seen, wildcard); alerts before it are not scored. */
export const LEARNING = HOUR;

/** Indicator set of the scenario (threat-intel attacks use these). */
export const INDICATORS =
  'ip 198.18.0.0/24 scenario-c2-net\ndomain c2.bad.example scenario-c2\nhash 44d88612fea8a8f36de82e1278abb02f eicar\n';

interface Device {
  id: string;
  user: string;
  site: number;
  period: number;
  /** Event-driven devices follow the day; the others are strictly periodic. */
  daily: boolean;
  size: number;
  online: boolean;
  /** Messages buffered while offline (store-and-forward), flushed at reconnect. */
  buffered: number;
  offlineSince: number;
}

export interface Scenario {
  sim: Sim;
  labels: Label[];
}

export function buildScenario(o: ScenarioOptions): Scenario {
  const end = START + o.hours * HOUR;
  const sim = new Sim(o.seed, START, end);
  const r = sim.rng;
  const labels: Label[] = [];
  const devices: Device[] = [];
  const siteIp = (s: number) => `100.64.${s}.1`;

  const newDevice = (n: number): Device => {
    const site = Math.floor(n / SITE_SIZE);
    return {
      id: `dev-${site}-${n}`,
      user: `device-${n}`,
      site,
      period: r.uniform(10, 60) * SECOND,
      daily: r.chance(0.3),
      size: Math.round(r.uniform(60, 400)),
      online: false,
      buffered: 0,
      offlineSince: 0,
    };
  };
  const topic = (d: Device) => `site${d.site}/${d.id}/telemetry`;
  const connect = (d: Device) => {
    d.online = true;
    sim.emit('client-connected', { ip: siteIp(d.site), user: d.user, clientId: d.id });
    sim.emit('subscription-granted', {
      ip: siteIp(d.site),
      user: d.user,
      clientId: d.id,
      subscriptions: [{ topic: `site${d.site}/${d.id}/cmd`, qos: 1, granted_qos: 1 }],
    });
    // store-and-forward: what was buffered offline goes out at once (capped by the device's memory)
    const flush = Math.min(d.buffered, 100);
    for (let i = 0; i < flush; i++) sim.at(sim.now + 50 + i * 20, () => publish(d));
    d.buffered = 0;
  };
  const publish = (d: Device) =>
    sim.emit('publish-received', {
      ip: siteIp(d.site),
      user: d.user,
      clientId: d.id,
      topic: topic(d),
      size: Math.max(1, Math.round(d.size * r.uniform(0.9, 1.1))),
      qos: 1,
    });
  const telemetry = (d: Device) => {
    if (d.online) publish(d);
    else d.buffered++;
    const period = d.daily ? d.period / (0.4 + dayLevel(sim.now)) : d.period;
    sim.at(sim.now + period * r.uniform(0.9, 1.1), () => telemetry(d));
  };
  const status = (d: Device) => {
    if (d.online)
      sim.emit('publish-received', {
        ip: siteIp(d.site),
        user: d.user,
        clientId: d.id,
        topic: `site${d.site}/${d.id}/status`,
        size: 12,
        qos: 1,
      });
    sim.at(sim.now + 5 * MINUTE * r.uniform(0.95, 1.05), () => status(d));
  };
  const startDevice = (d: Device, at: number) => {
    devices.push(d);
    sim.at(at, () => {
      connect(d);
      sim.at(sim.now + r.uniform(0, d.period), () => telemetry(d));
      sim.at(sim.now + r.uniform(0, 5 * MINUTE), () => status(d));
    });
  };
  for (let n = 0; n < o.devices; n++) {
    const d = newDevice(n);
    startDevice(d, START + r.uniform(0, 2 * MINUTE));
  }
  const sites = Math.ceil(o.devices / SITE_SIZE);

  // event-driven devices (2 %): a few times a day an alarm sends a burst of 5–40 messages at 1–5/s
  const alarm = (d: Device) => {
    const count = r.int(5, 40);
    const gap = 1000 / r.uniform(1, 5);
    for (let i = 0; i < count; i++)
      sim.at(
        sim.now + i * gap,
        () =>
          d.online &&
          sim.emit('publish-received', {
            ip: siteIp(d.site),
            user: d.user,
            clientId: d.id,
            topic: `site${d.site}/${d.id}/alarm`,
            size: 30,
            qos: 1,
          }),
      );
    sim.at(sim.now + r.exp(4 * HOUR), () => alarm(d));
  };
  for (const d of devices) if (r.chance(0.02)) sim.at(START + r.exp(4 * HOUR), () => alarm(d));

  // network blips: a site's uplink drops for 10 s to 5 min; its devices reconnect over 30 s
  const blip = (site: number) => {
    const down = r.uniform(10 * SECOND, 5 * MINUTE);
    for (const d of devices) {
      if (d.site !== site || !d.online) continue;
      d.online = false;
      d.offlineSince = sim.now;
      sim.emit('client-disconnected', { ip: siteIp(site), user: d.user, clientId: d.id, reason: 'keepalive-timeout' });
      sim.at(sim.now + down + r.uniform(0, 30 * SECOND), () => connect(d));
    }
    sim.at(sim.now + r.exp(6 * HOUR), () => blip(site));
  };
  for (let s = 0; s < sites; s++) sim.at(START + r.exp(6 * HOUR), () => blip(s));

  // firmware rollout: a third of the devices send payloads 3× larger, rolled out over an hour
  sim.at(START + o.hours * HOUR * 0.4, () => {
    for (const d of devices) if (r.chance(1 / 3)) sim.at(sim.now + r.uniform(0, HOUR), () => (d.size *= 3));
  });

  // a device with a stale password retries every 30 s all day; a typo now and then
  const stale = (ip: string) => {
    sim.emit('connection-refused', { ip, user: 'device-stale', clientId: 'dev-stale', reason: 'bad-credentials', reasonCode: 5 });
    sim.at(sim.now + 30 * SECOND * r.uniform(0.9, 1.1), () => stale(ip));
  };
  sim.at(START + r.uniform(0, MINUTE), () => stale(siteIp(0)));

  // operators from the office network, with the odd typo
  const operator = (k: number) => {
    const ip = `192.168.10.${10 + k}`;
    const user = `ops-${k}`;
    if (r.chance(0.1)) sim.emit('connection-refused', { ip, user, clientId: `console-${k}`, reason: 'bad-credentials', reasonCode: 5 });
    sim.at(sim.now + r.uniform(2, 10) * SECOND, () => {
      sim.emit('client-connected', { ip, user, clientId: `console-${k}` });
      sim.emit('subscription-granted', {
        ip,
        user,
        clientId: `console-${k}`,
        subscriptions: [{ topic: `site${k % sites}/+/telemetry`, qos: 0, granted_qos: 0 }],
      });
    });
    sim.at(sim.now + r.uniform(0.5, 3) * HOUR, () => operator(k));
  };
  for (let k = 0; k < 5; k++) sim.at(START + r.uniform(0, HOUR), () => operator(k));

  // the historian and the Zeek beat (internal client) have their broad subscriptions from the start
  sim.at(START, () => {
    sim.emit('client-connected', { ip: '10.0.0.20', user: 'historian', clientId: 'historian' });
    sim.emit('subscription-granted', {
      ip: '10.0.0.20',
      user: 'historian',
      clientId: 'historian',
      subscriptions: [{ topic: '#', qos: 1, granted_qos: 1 }],
    });
  });
  const zeek = () => {
    const host = r.pick(['updates.vendor.example', 'ntp.example', 'time.cloud.example', 'api.weather.example']);
    sim.emit('publish-received', {
      clientId: '$beat/zeek',
      topic: 'beats/zeek/dns',
      size: 200,
      payload: JSON.stringify({
        ts: sim.now / 1000,
        uid: `C${r.hex(8)}`,
        'id.orig_h': `10.20.0.${r.int(2, 200)}`,
        'id.resp_h': '10.20.0.1',
        query: host,
        answers: [`93.184.216.${r.int(1, 250)}`],
      }),
    });
    sim.at(sim.now + r.exp(2 * SECOND), zeek);
  };
  sim.at(START, zeek);

  // new devices provisioned during the day: expected informational new-client-id alerts
  for (let i = 0; i < 3; i++) {
    const d = newDevice(o.devices + i);
    d.site = i % sites;
    d.id = `dev-new-${i}`;
    const at = START + LEARNING + r.uniform(0.1, 0.9) * (end - START - LEARNING);
    startDevice(d, at);
    labels.push({ kind: 'new-client-id', intensity: 1, entity: { clientId: d.id }, start: at, end: at, due: at });
  }

  if (o.attacks) injectAttacks(sim, labels, devices, sites, end);
  return { sim, labels };
}

/** One attack of each kind at each intensity, spread over the scenario after the learning hour. */
function injectAttacks(sim: Sim, labels: Label[], devices: Device[], sites: number, end: number): void {
  const r = sim.rng;
  const kinds = Object.keys(ATTACKS);
  const plan = kinds.flatMap((kind) =>
    INTENSITIES.filter((i) => i >= 1 || !SINGLE_EVENT.has(kind)).map((intensity) => ({ kind, intensity })),
  );
  const slots = plan.length * REPEATS;
  const span = end - START - 2 * LEARNING;
  let slot = 0;
  let attacker = 0;
  const used = new Set<Device>();
  const victim = () => {
    for (;;) {
      const d = devices[r.int(0, devices.length - 1)];
      if (!used.has(d) && !d.id.startsWith('dev-new')) {
        used.add(d);
        return d;
      }
    }
  };
  for (let rep = 0; rep < REPEATS; rep++)
    for (const { kind, intensity } of plan) {
      const at = START + 2 * LEARNING + ((slot++ + r.uniform(0.1, 0.6)) / slots) * span;
      const n = attacker++;
      sim.at(at, () => {
        const label = ATTACKS[kind]({ sim, intensity, ip: `198.51.${100 + (n >> 8)}.${n & 255}`, n, victim, sites });
        labels.push({ kind, intensity, ...label });
      });
    }
}

/** Multiples of the documented minimum; 0.5 is below it (not expected to be caught: it shows where the floor is). */
const INTENSITIES = [0.5, 1, 2, 10];
const REPEATS = 3;
/** Attacks of one event have no "half" (payload-size does: half the size factor). */
const SINGLE_EVENT = new Set(['wildcard-subscription', 'new-source-network', 'new-client-id', 'threat-intel']);

interface AttackCtx {
  sim: Sim;
  intensity: number;
  /** An address of its own (in 198.51.100.0/22, a network no device uses). */
  ip: string;
  n: number;
  victim(): Device;
  sites: number;
}

type Attack = (c: AttackCtx) => Omit<Label, 'kind' | 'intensity'>;

/**
 * `count` events `gap` ms apart from now; `make(i)` emits the i-th. Returns the label times: `due`
 * is when the `minimum`-th event happened (the documented minimum evidence).
 */
function burst(
  sim: Sim,
  count: number,
  gap: number,
  minimum: number,
  make: (i: number) => void,
): { start: number; end: number; due: number } {
  const start = sim.now;
  for (let i = 0; i < count; i++) sim.at(start + i * gap, () => make(i));
  return { start, end: start + (count - 1) * gap, due: start + (Math.min(minimum, count) - 1) * gap };
}

const refused = (f: EventFields): EventFields => ({ reason: 'bad-credentials', reasonCode: 5, ...f });
const devFields = (d: Device, ip?: string): EventFields => ({ ip: ip ?? `100.64.${d.site}.1`, user: d.user, clientId: d.id });

const ATTACKS: Record<string, Attack> = {
  // minimum: 10 refusals within 60 s (one per 6 s)
  'auth-brute-force': ({ sim, intensity, ip, n }) => ({
    entity: { ip },
    ...burst(sim, 12 * intensity, 6000 / intensity, 10, () =>
      sim.emit('connection-refused', refused({ ip, user: 'admin', clientId: `x${n}` })),
    ),
  }),
  // minimum: 5 distinct users within 5 min (one per 60 s)
  'credential-stuffing': ({ sim, intensity, ip, n }) => ({
    entity: { ip },
    ...burst(sim, 6 * intensity, 60_000 / intensity, 5, (i) =>
      sim.emit('connection-refused', refused({ ip, user: `user${n}-${i}`, clientId: `s${n}-${i}` })),
    ),
  }),
  // minimum: 100 attempts within 10 s (10 per second)
  'connection-storm': ({ sim, intensity, ip, n }) => ({
    entity: { ip },
    ...burst(sim, 110 * intensity, 100 / intensity, 100, (i) =>
      sim.emit('client-connected', { ip, user: `bot${n}`, clientId: `bot${n}-${i % 5}` }),
    ),
  }),
  // minimum: 10 connects of one id within 5 min (one per 30 s)
  'client-flapping': ({ sim, intensity, victim }) => {
    const d = victim();
    return {
      entity: { clientId: d.id },
      ...burst(sim, 11 * intensity, 30_000 / intensity, 10, () => sim.emit('client-connected', devFields(d))),
    };
  },
  'wildcard-subscription': ({ sim, intensity, victim }) => {
    const d = victim();
    const filter = intensity === 1 ? '#' : intensity === 2 ? '$SYS/#' : '+/#';
    return {
      entity: { clientId: d.id },
      ...burst(sim, 1, 0, 1, () =>
        sim.emit('subscription-granted', { ...devFields(d), subscriptions: [{ topic: filter, qos: 0, granted_qos: 0 }] }),
      ),
    };
  },
  // minimum: 20 distinct filters within 60 s (one per 3 s)
  'topic-scan': ({ sim, intensity, victim }) => {
    const d = victim();
    return {
      entity: { clientId: d.id },
      ...burst(sim, 22 * intensity, 3000 / intensity, 20, (i) =>
        sim.emit('subscription-granted', {
          ...devFields(d),
          subscriptions: [{ topic: `site${i % 40}/+/cmd/${i}`, qos: 0, granted_qos: 0 }],
        }),
      ),
    };
  },
  // minimum: 10 denials within 60 s (one per 6 s)
  'acl-denials': ({ sim, intensity, victim, sites }) => {
    const d = victim();
    return {
      entity: { clientId: d.id },
      ...burst(sim, 11 * intensity, 6000 / intensity, 10, (i) =>
        sim.emit('publish-denied', { ...devFields(d), topic: `site${i % sites}/dev-other/cmd`, size: 20 }),
      ),
    };
  },
  // minimum: 50 publishes per 10 s from a quiet device (5 per second) for 60 s
  'publish-rate': ({ sim, intensity, victim }) => {
    const d = victim();
    const perSecond = 5 * intensity;
    return {
      entity: { clientId: d.id },
      ...burst(sim, 60 * perSecond, 1000 / perSecond, 50, () =>
        sim.emit('publish-received', { ...devFields(d), topic: `site${d.site}/${d.id}/telemetry`, size: d.size, qos: 0 }),
      ),
    };
  },
  // 5 × intensity clients, each below its own threshold (1 per second), on one device's topic; minimum 50 per 10 s
  'topic-rate': ({ sim, intensity, victim }) => {
    const ds = Array.from({ length: 5 * intensity }, victim);
    const t = `site${ds[0].site}/${ds[0].id}/telemetry`;
    const b = burst(sim, 60 * ds.length, 1000 / ds.length, 50, (i) =>
      sim.emit('publish-received', { ...devFields(ds[i % ds.length]), topic: t, size: ds[0].size, qos: 0 }),
    );
    return { entity: { topic: t }, ...b };
  },
  // minimum: one payload of 8× the usual size and at least 1 KiB
  'payload-size': ({ sim, intensity, victim }) => {
    const d = victim();
    const size = Math.max(1024, Math.round(d.size * 3 * 8 * intensity)); // ×3: the device may have had its firmware update
    return {
      entity: { topic: `site${d.site}/${d.id}/telemetry` },
      ...burst(sim, 1, 0, 1, () =>
        sim.emit('publish-received', { ...devFields(d), topic: `site${d.site}/${d.id}/telemetry`, size, qos: 1 }),
      ),
    };
  },
  // a device's stolen credentials used from another network
  'new-source-network': ({ sim, ip, victim }) => {
    const d = victim();
    return {
      entity: { user: d.user },
      ...burst(sim, 1, 0, 1, () => sim.emit('client-connected', { ip, user: d.user, clientId: `${d.id}-x` })),
    };
  },
  'new-client-id': ({ sim, ip, n }) => ({
    entity: { clientId: `rogue-${n}` },
    ...burst(sim, 1, 0, 1, () => sim.emit('client-connected', { ip, user: `guest-${n}`, clientId: `rogue-${n}` })),
  }),
  // a connection from the indicator network, or a Zeek DNS record for the indicator domain
  'threat-intel': ({ sim, intensity, n }) => {
    if (intensity === 1) {
      const ip = `198.18.0.${n & 255}`;
      return {
        entity: { ip },
        ...burst(sim, 1, 0, 1, () => sim.emit('connection-refused', refused({ ip, user: 'admin', clientId: `c2-${n}` }))),
      };
    }
    const orig = `10.20.1.${n & 255}`;
    return {
      entity: { ip: orig },
      ...burst(sim, 1, 0, 1, () =>
        sim.emit('publish-received', {
          clientId: '$beat/zeek',
          topic: 'beats/zeek/dns',
          size: 200,
          payload: JSON.stringify({
            ts: sim.now / 1000,
            uid: `C${n}`,
            'id.orig_h': orig,
            'id.resp_h': '10.20.0.1',
            query: `x${n}.c2.bad.example`,
          }),
        }),
      ),
    };
  },
};
