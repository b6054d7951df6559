/**
 * The table-driven runner of the conformance suites: each row is one or more normative statements of
 * the MQTT specification (ids as the OASIS text numbers them, a one-line paraphrase), a probe that
 * observes on the wire what a client can see, and what the statement requires as that observation.
 * Every row runs against mqprobe and Mosquitto 2.0.11 (one broker of each per file, probes of a row
 * side by side); where Mosquitto answers otherwise, the row names the difference and pins Mosquitto's
 * answer, so a change on either side fails. docs/conformance.md is generated from these tables
 * (`npx tsx test/conformance/doc.ts > docs/conformance.md`).
 */
import t from 'tap';
import { startTestBroker } from '../helpers/broker.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { WireClient, type Received } from '../engine/wire.js';

export type Observation = Record<string, unknown>;

/** One broker as a probe sees it: its port, a tag unique per row and broker for client ids and topics, clients closed after the probe. */
export interface Target {
  name: 'mqprobe' | 'mosquitto';
  port: number;
  version: 4 | 5;
  /** `<tag>-<what>`: a client id or topic level no other row uses. */
  id(what: string): string;
  /** A socket without CONNECT. */
  open(): Promise<WireClient>;
  /** CONNECT and its CONNACK (undefined when the broker closed instead). */
  attempt(connect?: Record<string, unknown>): Promise<{ c: WireClient; connack: Received | undefined }>;
  /** CONNECT that must be accepted (throws with the broker's answer otherwise). */
  connect(connect?: Record<string, unknown>): Promise<WireClient>;
}

export interface Statement {
  /** Statement ids without brackets, e.g. `MQTT-3.1.0-1`. */
  ids: string[];
  /** What the statements require, paraphrased in one line. */
  says: string;
  probe(b: Target): Promise<Observation>;
  /** The observation the statements require. */
  spec: Observation;
  /** Mosquitto 2.0.11 answers otherwise: what it answers and why that is so. */
  mosquitto?: { answers: Observation; why: string };
  /** mqprobe does not conform yet: the reason (the row runs as a tap `todo`). */
  mqprobeTodo?: string;
  /** A note for docs/conformance.md (e.g. a SHOULD the two brokers answer differently). */
  note?: string;
}

/** A statement a broker must satisfy that a client cannot observe, and why. */
export interface Untestable {
  ids: string[];
  says: string;
  why: string;
}

export interface Suite {
  title: string;
  version: 4 | 5;
  statements: Statement[];
  untestable: Untestable[];
}

/** Probes of different rows run this many at a time (each row's two probes side by side). */
const CONCURRENCY = 6;

function target(name: Target['name'], port: number, version: 4 | 5, tag: string, opened: WireClient[]): Target {
  const attempt = async (connect: Record<string, unknown> = {}) => {
    const r = await WireClient.connect(port, { clientId: `${tag}-c${opened.length}`, ...connect }, version);
    opened.push(r.c);
    return r;
  };
  return {
    name,
    port,
    version,
    id: (what) => `${tag}-${what}`,
    async open() {
      const c = await WireClient.open(port, version);
      opened.push(c);
      return c;
    },
    attempt,
    async connect(connect = {}) {
      const { c, connack } = await attempt(connect);
      const code = connack?.reasonCode ?? connack?.returnCode;
      if (code !== 0) throw new Error(`CONNECT refused: ${connack ? `code ${code}` : 'closed without CONNACK'}`);
      return c;
    },
  };
}

async function observe(s: Statement, name: Target['name'], port: number, version: 4 | 5, tag: string): Promise<Observation> {
  const opened: WireClient[] = [];
  try {
    return await s.probe(target(name, port, version, tag, opened));
  } catch (e) {
    return { probeFailed: (e as Error).message };
  } finally {
    for (const c of opened) c.end();
  }
}

/** Runs the tasks at most `n` at a time, in order; one promise per task. */
function limited<T>(tasks: (() => Promise<T>)[], n: number): Promise<T>[] {
  const settle: ((v: T) => void)[] = [];
  const results = tasks.map(() => new Promise<T>((resolve) => settle.push(resolve)));
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      settle[i](await tasks[i]());
    }
  };
  for (let k = 0; k < n; k++) void worker();
  return results;
}

export const label = (s: { ids: string[]; says: string }) => `${s.ids.map((id) => `[${id}]`).join(' ')} ${s.says}`;

/** Starts mqprobe and Mosquitto once for the file and runs every row against both. */
export function runSuite(suite: Suite, conf = 'allow_anonymous true\n'): void {
  t.test(suite.title, async (t) => {
    const ours = await startTestBroker(t, `listener 0 127.0.0.1\n${conf}`);
    const theirs = await startMosquitto(t, conf);
    const version = suite.version;
    const observed = limited(
      suite.statements.map(
        (s, i) => () =>
          Promise.all([
            observe(s, 'mqprobe', ours.port, version, `p${version}r${i}`),
            observe(s, 'mosquitto', theirs.port, version, `m${version}r${i}`),
          ]),
      ),
      CONCURRENCY,
    );
    for (const [i, s] of suite.statements.entries()) {
      await t.test(label(s), async (tt) => {
        const [mqprobe, mosquitto] = await observed[i];
        tt.same(mqprobe, s.spec, 'mqprobe', s.mqprobeTodo ? { todo: s.mqprobeTodo } : {});
        if (s.mosquitto) {
          tt.notSame(s.mosquitto.answers, s.spec, 'the difference named for Mosquitto is one');
          tt.same(mosquitto, s.mosquitto.answers, `Mosquitto 2.0.11 differs: ${s.mosquitto.why}`);
        } else tt.same(mosquitto, s.spec, 'Mosquitto 2.0.11');
      });
    }
  });
}
