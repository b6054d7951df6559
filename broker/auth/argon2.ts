import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { decodeBase64 } from './base64.js';

/** argon2id cost parameters, as a PHC string writes them (`m=…,t=…,p=…`). */
export interface Argon2Params {
  /** m: memory in KiB. */
  memoryKiB: number;
  /** t: passes over the memory. */
  passes: number;
  /** p: lanes. */
  lanes: number;
}

/** What Mosquitto 2.1's `mosquitto_passwd -H argon2id` writes (libcommon/password_common.c, OWASP's first choice). */
export const MOSQUITTO_ARGON2: Argon2Params & { saltBytes: number; hashBytes: number } = {
  memoryKiB: 47104,
  passes: 1,
  lanes: 1,
  saltBytes: 64,
  hashBytes: 64,
};

/**
 * The argon2id lines mqprobe runs. Every CONNECT with a username of such a line costs one
 * derivation, so a line asking for more is refused (that user removed) instead of run:
 * 256 MiB of memory at most, and at most 1 GiB of memory passes (m × t) — about 22 times
 * Mosquitto's default, a second or two here.
 */
export const ARGON2_LIMITS = {
  maxMemoryKiB: 256 * 1024,
  maxWorkKiB: 1024 * 1024,
  maxLanes: 16,
  saltBytes: { min: 8, max: 1024 },
  /** Shorter tags than 16 bytes collide too easily to be a password check. */
  hashBytes: { min: 16, max: 1024 },
};

export interface Argon2Hash {
  params: Argon2Params;
  salt: Buffer;
  hash: Buffer;
}

const PHC_RE = /^\$argon2id\$(?:v=(\d{1,10})\$)?m=(\d{1,10}),t=(\d{1,10}),p=(\d{1,10})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

/**
 * Decodes an argon2id PHC string as libargon2 writes it (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`,
 * base64 without padding). Returns a reason (never quoting the field) when it is malformed or
 * asks for more than ARGON2_LIMITS.
 */
export function parseArgon2id(field: string): Argon2Hash | string {
  const m = PHC_RE.exec(field);
  if (!m) return 'malformed $argon2id$ hash (expected $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>, base64 without padding)';
  // libargon2 reads a missing v= as version 16 (1.0), which hash-wasm cannot compute
  const version = m[1] === undefined ? 16 : Number(m[1]);
  if (version !== 19) return `argon2 version ${version} is not supported (only v=19)`;
  const [memoryKiB, passes, lanes] = [Number(m[2]), Number(m[3]), Number(m[4])];
  if (lanes < 1 || lanes > ARGON2_LIMITS.maxLanes) return `argon2 lanes p=${lanes} outside 1..${ARGON2_LIMITS.maxLanes}`;
  if (passes < 1) return 'argon2 passes t must be at least 1';
  if (memoryKiB < 8 * lanes) return `argon2 memory m=${memoryKiB} KiB is below the minimum of 8 KiB per lane`;
  if (memoryKiB > ARGON2_LIMITS.maxMemoryKiB)
    return `argon2 memory m=${memoryKiB} KiB is above mqprobe's limit of ${ARGON2_LIMITS.maxMemoryKiB} KiB`;
  if (memoryKiB * passes > ARGON2_LIMITS.maxWorkKiB)
    return `argon2 cost m×t=${memoryKiB * passes} KiB is above mqprobe's limit of ${ARGON2_LIMITS.maxWorkKiB} KiB`;
  const salt = decodeBase64(m[5]);
  const hash = decodeBase64(m[6]);
  if (!salt || !hash) return `malformed $argon2id$ hash (${salt ? 'hash' : 'salt'} is not valid base64)`;
  const { saltBytes: sb, hashBytes: hb } = ARGON2_LIMITS;
  if (salt.length < sb.min || salt.length > sb.max) return `argon2 salt must be ${sb.min} to ${sb.max} bytes, found ${salt.length}`;
  if (hash.length < hb.min || hash.length > hb.max) return `argon2 hash must be ${hb.min} to ${hb.max} bytes, found ${hash.length}`;
  return { params: { memoryKiB, passes, lanes }, salt, hash };
}

/** The PHC string, as libargon2 (and so Mosquitto 2.1) writes it. */
export function formatArgon2id(h: Argon2Hash): string {
  const b64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '');
  return `$argon2id$v=19$m=${h.params.memoryKiB},t=${h.params.passes},p=${h.params.lanes}$${b64(h.salt)}$${b64(h.hash)}`;
}

/**
 * argon2id runs in one worker thread: hash-wasm computes synchronously, about 100 ms (more on
 * a loaded machine) at Mosquitto's parameters, which on the event loop would stall every
 * connection. One thread keeps the memory bound at one derivation (its wasm memory grows to
 * the largest m it ran); derivations queue in order.
 */
const WORKER_CODE = `
const { parentPort, workerData } = require('node:worker_threads');
const { argon2id } = require(workerData.hashWasm);
parentPort.on('message', (job) => {
  argon2id({ password: job.password, salt: job.salt, iterations: job.passes, memorySize: job.memoryKiB, parallelism: job.lanes, hashLength: job.hashBytes, outputType: 'binary' }).then(
    (hash) => parentPort.postMessage({ id: job.id, hash }, [hash.buffer]),
    (err) => parentPort.postMessage({ id: job.id, error: String((err && err.message) || err) }),
  );
});
`;

interface Pending {
  resolve(hash: Buffer): void;
  reject(err: Error): void;
}

class Argon2Thread {
  private worker?: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  derive(password: Buffer, salt: Buffer, params: Argon2Params, hashBytes: number): Promise<Buffer> {
    const worker = this.worker ?? this.start();
    const id = this.nextId++;
    return new Promise<Buffer>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.ref(); // a derivation in flight keeps the process alive; an idle thread does not
      worker.postMessage({ id, password, salt, ...params, hashBytes });
    });
  }

  private start(): Worker {
    const hashWasm = createRequire(import.meta.url).resolve('hash-wasm');
    const worker = new Worker(WORKER_CODE, { eval: true, workerData: { hashWasm } });
    worker.on('message', (m: { id: number; hash?: Uint8Array; error?: string }) => {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (this.pending.size === 0) worker.unref();
      if (m.hash) p?.resolve(Buffer.from(m.hash.buffer, m.hash.byteOffset, m.hash.byteLength));
      else p?.reject(new Error(`argon2id failed: ${m.error}`));
    });
    // a dead thread fails what it held (those logins are refused); the next derivation starts a new one
    const fail = (err: Error) => {
      if (this.worker === worker) this.worker = undefined;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    worker.on('error', (err) => fail(new Error(`argon2id thread failed: ${err.message}`)));
    worker.on('exit', (code) => fail(new Error(`argon2id thread exited (${code})`)));
    worker.unref();
    this.worker = worker;
    return worker;
  }
}

const thread = new Argon2Thread();

/** argon2id (version 19) of a password, computed off the event loop. */
export function argon2idDerive(password: Buffer, salt: Buffer, params: Argon2Params, hashBytes: number): Promise<Buffer> {
  return thread.derive(password, salt, params, hashBytes);
}
