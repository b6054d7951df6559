/**
 * Starts a real Apache Kafka 4.1 (KRaft, one node acting as broker and controller) for tests, from the jars
 * test/peers/kafka/pom.xml fetches from Maven Central (`mvn -q -B -f test/peers/kafka/pom.xml generate-resources`
 * writes their class path; this helper runs it when the class path is missing). Each node gets its own
 * temporary data directory, free loopback ports, a 512 MB heap, and is killed in teardown.
 *
 * `secure: true` adds a SASL_SSL listener (SCRAM-SHA-256/512 users made at format time, PLAIN from the JAAS
 * line, a server certificate from test/helpers/certs.ts) beside the plaintext one the helper itself uses.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Admin, Consumer, stringDeserializers } from '@platformatic/kafka';
import { freePort, waitForPort, type TestBroker } from './broker.js';
import { makePki, type TestPki } from './certs.js';
import { repoRoot } from './paths.js';
import { tempDir } from './tmp.js';

export interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface KafkaRecord {
  key: string;
  value: string;
  headers: Record<string, string>;
  partition: number;
  offset: bigint;
}

export interface KafkaPeer {
  /** 127.0.0.1:PORT of the plaintext listener. */
  bootstrap: string;
  /** With `secure`: the SASL_SSL listener, the users and the CA that signs its certificate. */
  secure?: { bootstrap: string; user: string; password: string; pki: TestPki };
  /** Stops the node (data kept); `start()` brings it back on the same ports with the same data. */
  stop(): Promise<void>;
  start(): Promise<void>;
  createTopic(name: string, opts?: { partitions?: number; config?: Record<string, string> }): Promise<void>;
  /** Every record the topic holds now (up to its end offsets), from the beginning. */
  records(topic: string, timeoutMs?: number): Promise<KafkaRecord[]>;
  /** How many records the topic holds (the sum of its partitions' end offsets), without reading them. */
  count(topic: string): Promise<number>;
  logTail(): string;
}

/** The capture events of a topic's records. */
export const recordEvents = (rs: KafkaRecord[]) => rs.map((r) => JSON.parse(r.value) as Record<string, any>);

/** The sequence numbers 1..max that are missing (duplicates from a resent batch are allowed: at-least-once). */
export function missingSequences(seqs: number[]): number[] {
  const have = new Set(seqs);
  const max = seqs.reduce((m, s) => Math.max(m, s), 0);
  return Array.from({ length: max }, (_, i) => i + 1).filter((s) => !have.has(s));
}

/** Stops an in-process broker (its sinks deliver what they can first) and says how many events it recorded. */
export async function stopped(b: TestBroker): Promise<number> {
  await b.broker.close();
  return b.broker.capture.stats().recorded;
}

let topicCount = 0;

/** A new topic of three partitions, named after the test file's purpose. */
export async function newTopic(k: KafkaPeer, prefix: string, config?: Record<string, string>): Promise<string> {
  const name = `${prefix}-${++topicCount}`;
  await k.createTopic(name, { partitions: 3, config });
  return name;
}

const PEER_DIR = join(repoRoot, 'test', 'peers', 'kafka');

/** The class path of Kafka's jars, fetched by Maven on first use. */
export function kafkaClassPath(): string {
  const file = join(PEER_DIR, 'target', 'classpath.txt');
  if (!existsSync(file)) {
    mkdirSync(join(PEER_DIR, 'target'), { recursive: true });
    // test files run in parallel: one fetch at a time
    const r = spawnSync(
      'flock',
      [join(PEER_DIR, 'target', '.fetch.lock'), 'mvn', '-q', '-B', '-f', join(PEER_DIR, 'pom.xml'), 'generate-resources'],
      {
        encoding: 'utf8',
      },
    );
    if (r.status !== 0 || !existsSync(file)) throw new Error(`mvn could not fetch Kafka: ${r.stderr || r.stdout || r.error?.message}`);
  }
  return readFileSync(file, 'utf8').trim();
}

export async function startKafka(t: Teardown, opts: { secure?: boolean; autoCreate?: boolean } = {}): Promise<KafkaPeer> {
  const cp = kafkaClassPath();
  const dir = tempDir('mqprobe-kafka-');
  const [port, controller] = [await freePort(), await freePort()];
  const bootstrap = `127.0.0.1:${port}`;
  let secure: KafkaPeer['secure'];
  const listeners = [`PLAINTEXT://${bootstrap}`];
  const props = [
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@127.0.0.1:${controller}`,
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=PLAINTEXT',
    `log.dirs=${join(dir, 'data')}`,
    'num.partitions=1',
    'offsets.topic.replication.factor=1',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'group.initial.rebalance.delay.ms=0',
    `auto.create.topics.enable=${opts.autoCreate ?? true}`,
  ];
  const scram: string[] = [];
  if (opts.secure) {
    const sport = await freePort();
    mkdirSync(join(dir, 'pki'));
    const pki = makePki(join(dir, 'pki'));
    secure = { bootstrap: `127.0.0.1:${sport}`, user: 'mqprobe', password: `scram-${process.pid}-${Date.now()}`, pki };
    // a PEM key store: the unencrypted PKCS#8 key and its certificate in one file
    const keystore = join(dir, 'keystore.pem');
    writeFileSync(keystore, readFileSync(pki.serverKey, 'utf8') + readFileSync(pki.serverCert, 'utf8'));
    listeners.push(`SASL_SSL://${secure.bootstrap}`);
    props.push(
      'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL',
      'sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN',
      'listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;',
      'listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;',
      `listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_${secure.user}="${secure.password}";`,
      'ssl.keystore.type=PEM',
      `ssl.keystore.location=${keystore}`,
      'ssl.truststore.type=PEM',
      `ssl.truststore.location=${pki.caCert}`,
      'ssl.client.auth=requested',
    );
    for (const m of ['SCRAM-SHA-256', 'SCRAM-SHA-512']) scram.push('--add-scram', `${m}=[name=${secure.user},password=${secure.password}]`);
  } else {
    props.push('listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT');
  }
  props.push(
    `listeners=${[...listeners, `CONTROLLER://127.0.0.1:${controller}`].join(',')}`,
    `advertised.listeners=${listeners.join(',')}`,
  );
  const propsFile = join(dir, 'server.properties');
  writeFileSync(propsFile, props.join('\n') + '\n');
  const java = (args: string[]) => spawnSync('java', ['-cp', cp, ...args], { encoding: 'utf8' });
  const id = java(['kafka.tools.StorageTool', 'random-uuid']).stdout.trim().split('\n').at(-1)!;
  const fmt = java(['kafka.tools.StorageTool', 'format', '-t', id, '-c', propsFile, ...scram]);
  if (fmt.status !== 0) throw new Error(`kafka storage format failed: ${fmt.stderr.slice(-2000)}`);

  const logFile = join(dir, 'kafka.log');
  let child: ChildProcess | undefined;
  const logTail = () => {
    try {
      return readFileSync(logFile, 'utf8').split('\n').slice(-30).join('\n');
    } catch {
      return '(no log)';
    }
  };
  const start = async () => {
    const before = existsSync(logFile) ? readFileSync(logFile, 'utf8').length : 0;
    const out = openSync(logFile, 'a');
    child = spawn('java', ['-Xmx512m', '-Xms256m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-cp', cp, 'kafka.Kafka', propsFile], {
      cwd: dir,
      stdio: ['ignore', out, out],
    });
    closeSync(out);
    try {
      await waitForPort(port);
      await waitStarted(logFile, before, () => child?.exitCode === null && child.signalCode === null);
    } catch (e) {
      throw new Error(`kafka did not come up: ${(e as Error).message}\n${logTail()}`);
    }
  };
  const stop = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill('SIGTERM');
    const timer = setTimeout(() => c.kill('SIGKILL'), 15_000);
    await gone;
    clearTimeout(timer);
  };
  t.teardown(async () => {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await start();

  const createTopic: KafkaPeer['createTopic'] = async (name, o = {}) => {
    const admin = new Admin({ clientId: 'test-admin', bootstrapBrokers: [bootstrap] });
    try {
      await admin.createTopics({
        topics: [name],
        partitions: o.partitions ?? 1,
        replicas: 1,
        configs: Object.entries(o.config ?? {}).map(([n, value]) => ({ name: n, value })),
      });
    } finally {
      await admin.close();
    }
  };

  const reader = () =>
    new Consumer({
      groupId: `test-reader-${Date.now()}-${Math.random()}`,
      clientId: 'test-reader',
      bootstrapBrokers: [bootstrap],
      deserializers: stringDeserializers,
    });
  const closed = (c: ReturnType<typeof reader>) => new Promise<void>((resolve) => c.close(true, () => resolve()));

  const count: KafkaPeer['count'] = async (topic) => {
    const consumer = reader();
    try {
      const ends = (await consumer.listOffsets({ topics: [topic] })).get(topic) ?? [];
      return Number(ends.reduce((a, b) => a + b, 0n));
    } finally {
      await closed(consumer);
    }
  };

  const records: KafkaPeer['records'] = async (topic, timeoutMs = 30_000) => {
    const consumer = reader();
    const got: KafkaRecord[] = [];
    try {
      // read up to the end offsets of now: every record the topic holds at this moment
      const ends = (await consumer.listOffsets({ topics: [topic] })).get(topic) ?? [];
      const left = new Map(ends.flatMap((end, partition): [number, bigint][] => (end > 0n ? [[partition, end]] : [])));
      if (left.size === 0) return got;
      const stream = await consumer.consume({ topics: [topic], mode: 'earliest', autocommit: false, maxWaitTime: 200 });
      const timer = setTimeout(() => void stream.close(), timeoutMs);
      try {
        for await (const m of stream) {
          got.push({
            key: m.key,
            value: m.value,
            headers: Object.fromEntries([...m.headers].map(([k, v]) => [String(k), String(v)])),
            partition: m.partition,
            offset: m.offset,
          });
          if (m.offset + 1n >= (left.get(m.partition) ?? 0n)) left.delete(m.partition);
          if (left.size === 0) break;
        }
      } finally {
        clearTimeout(timer);
        await stream.close().catch(() => {});
      }
    } finally {
      await closed(consumer);
    }
    return got;
  };

  return { bootstrap, secure, stop, start, createTopic, records, count, logTail };
}

/** Waits for the line Kafka logs once every listener accepts, written after `from` (a restart appends to the log). */
async function waitStarted(logFile: string, from: number, alive: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive()) throw new Error('the node exited');
    const text = readFileSync(logFile, 'utf8');
    if (text.indexOf('Kafka Server started', from) >= 0) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no "Kafka Server started" in ${logFile} after ${timeoutMs} ms`);
}
