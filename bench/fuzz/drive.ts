/**
 * Plays fuzz cases against a running broker over TCP and WebSockets, a pool of connections at a time,
 * and checks between batches that a normal client still gets its own QoS 1 publish back.
 */
import net from 'node:net';
import mqtt from 'mqtt';
import WebSocket from 'ws';
import { fuzzCases, type FuzzCase } from './packets.js';

export interface Target {
  tcpPort: number;
  wsPort: number;
}

export interface FuzzOptions {
  seed: number;
  count: number;
  /** Connections open at the same time. */
  concurrency: number;
  /** How long after its last byte a connection may stay open before the fuzzer closes it. */
  idleMs: number;
  /** A health check after every this many cases (and one at the end). */
  checkEvery: number;
  /** Called after every batch, once the health check has passed. */
  onBatch?: (done: number, stats: FuzzStats) => void | Promise<void>;
  /** Called with every case and who closed its connection. */
  onCase?: (c: FuzzCase, closedBy: 'broker' | 'fuzzer' | 'refused') => void;
}

export interface FuzzStats {
  cases: number;
  byKind: Record<string, number>;
  byTransport: Record<string, number>;
  byDelivery: Record<string, number>;
  byVersion: Record<string, number>;
  /** Per kind: connections the broker closed before the fuzzer gave up on them. */
  brokerClosedByKind: Record<string, number>;
  closedByBroker: number;
  closedByFuzzer: number;
  /** WebSocket handshakes the broker refused (counted as closed by the broker too). */
  handshakesRefused: number;
  healthChecks: number;
  durationMs: number;
}

/** No answer at all within this long is a hang, not a slow broker. */
const HANG_MS = 10_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const bump = (m: Record<string, number>, k: string | number) => (m[k] = (m[k] ?? 0) + 1);

/** One line naming a case and its first bytes, enough to replay it by hand. */
export function describeCase(c: FuzzCase): string {
  const bytes = Buffer.concat(c.chunks);
  return `case #${c.index} ${c.kind} v${c.version} ${c.transport}${c.rawHttp ? ' (raw http)' : ''} ${c.delivery}, ${bytes.length} bytes: ${bytes.subarray(0, 96).toString('hex')}${bytes.length > 96 ? '…' : ''}`;
}

/** The writing side of one connection, the same for a TCP socket and a WebSocket. */
interface Conn {
  send(b: Buffer): void;
  kill(): void;
}

/**
 * Opens the connection, writes the case's pieces at its pace, then waits `idleMs` for the broker to
 * close; resolves with who closed it. Rejects when nothing can be opened or nothing happens at all.
 */
function playCase(target: Target, c: FuzzCase, idleMs: number): Promise<'broker' | 'fuzzer' | 'refused'> {
  return new Promise((resolve, reject) => {
    let closed = false;
    let killedByUs = false;
    let refused = false;
    const hang = setTimeout(() => fail(new Error(`no open and no close within ${HANG_MS} ms`)), HANG_MS);
    const fail = (err: Error) => {
      clearTimeout(hang);
      conn?.kill();
      reject(new Error(`${describeCase(c)}: ${err.message}`));
    };
    const onClose = () => {
      if (closed) return;
      closed = true;
      clearTimeout(hang);
      resolve(refused ? 'refused' : killedByUs ? 'fuzzer' : 'broker');
    };
    const play = async () => {
      for (const chunk of c.chunks) {
        if (closed) return;
        conn!.send(chunk);
        if (c.delivery === 'drip') await sleep(1);
        else if (c.delivery === 'chunks') await new Promise((r) => setImmediate(r));
      }
      await sleep(idleMs);
      if (!closed) {
        killedByUs = true;
        conn!.kill();
      }
    };
    let conn: Conn | undefined;
    if (c.transport === 'tcp' || c.rawHttp) {
      const s = net.connect(c.rawHttp ? target.wsPort : target.tcpPort, '127.0.0.1');
      s.setNoDelay(true);
      conn = { send: (b) => s.write(b), kill: () => s.destroy() };
      s.on('connect', () => void play());
      s.on('data', () => undefined);
      s.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ECONNREFUSED') fail(err);
      });
      s.on('close', onClose);
    } else {
      const ws = new WebSocket(`ws://127.0.0.1:${target.wsPort}/mqtt`, 'mqtt');
      conn = { send: (b) => ws.readyState === WebSocket.OPEN && ws.send(b), kill: () => ws.terminate() };
      ws.on('open', () => void play());
      ws.on('unexpected-response', () => {
        refused = true;
        ws.terminate();
      });
      ws.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ECONNREFUSED') fail(err);
      });
      ws.on('close', onClose);
    }
  });
}

/**
 * A normal client connects (over TCP or WebSockets), subscribes and must get its own QoS 1 publish
 * back within `timeoutMs`; rejects otherwise.
 */
export async function roundTrip(url: string, id: string, timeoutMs = HANG_MS): Promise<void> {
  const client = mqtt.connect(url, { clientId: id, reconnectPeriod: 0, connectTimeout: timeoutMs, protocolVersion: 4 });
  const topic = `fuzz/health/${id}`;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`health check ${id} over ${url}: no round trip within ${timeoutMs} ms`)), timeoutMs);
      client.once('error', (err) => reject(new Error(`health check ${id} over ${url}: ${err.message}`)));
      client.on('message', (t, payload) => {
        if (t === topic && payload.toString() === id) {
          clearTimeout(timer);
          resolve();
        }
      });
      client.once('connect', async () => {
        try {
          await client.subscribeAsync(topic, { qos: 1 });
          await client.publishAsync(topic, id, { qos: 1 });
        } catch (err) {
          reject(new Error(`health check ${id} over ${url}: ${(err as Error).message}`));
        }
      });
    });
  } finally {
    await client.endAsync(true);
  }
}

/** Runs `count` cases from `seed`; rejects on the first case or health check that shows a dead or hung broker. */
export async function runFuzz(target: Target, o: FuzzOptions): Promise<FuzzStats> {
  const started = performance.now();
  const stats: FuzzStats = {
    cases: 0,
    byKind: {},
    byTransport: {},
    byDelivery: {},
    byVersion: {},
    brokerClosedByKind: {},
    closedByBroker: 0,
    closedByFuzzer: 0,
    handshakesRefused: 0,
    healthChecks: 0,
    durationMs: 0,
  };
  const cases = fuzzCases(o.seed, o.count);
  const check = async () => {
    const n = stats.healthChecks++;
    const url = n % 2 === 0 ? `mqtt://127.0.0.1:${target.tcpPort}` : `ws://127.0.0.1:${target.wsPort}/mqtt`;
    await roundTrip(url, `health-${o.seed}-${n}`);
  };
  let done = 0;
  while (done < o.count) {
    const batchEnd = Math.min(o.count, done + o.checkEvery);
    const worker = async () => {
      while (done < batchEnd) {
        done++;
        const next = cases.next();
        if (next.done) return;
        const c = next.value;
        const who = await playCase(target, c, o.idleMs);
        o.onCase?.(c, who);
        stats.cases++;
        bump(stats.byKind, c.kind);
        bump(stats.byTransport, c.rawHttp ? 'ws (raw http)' : c.transport);
        bump(stats.byDelivery, c.delivery);
        bump(stats.byVersion, c.version);
        if (who === 'fuzzer') stats.closedByFuzzer++;
        else {
          stats.closedByBroker++;
          bump(stats.brokerClosedByKind, c.kind);
        }
        if (who === 'refused') stats.handshakesRefused++;
      }
    };
    await Promise.all(Array.from({ length: o.concurrency }, worker));
    await check();
    await o.onBatch?.(done, stats);
  }
  stats.durationMs = Math.round(performance.now() - started);
  return stats;
}
