import type { Client } from './vendor/aedes/aedes.js';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';

/** A PUBLISH payload at least this large is followed by garbage collections once the broker is quiet. */
export const LARGE_PAYLOAD_BYTES = 8 * 1024 * 1024;
/** When, after the last large payload, the collections run (ms): deliveries to slow readers finish later. */
const COLLECT_AFTER_MS = [1_000, 3_000, 10_000];

let gc: (() => void) | undefined;
let timers: NodeJS.Timeout[] = [];

/**
 * Gives the memory of large messages back once they are delivered. A large payload lives in Buffers
 * outside V8's heap (the socket's read chunks, the parsed payload, the subscribers' write buffers);
 * they become garbage when the message is delivered, but V8 only collects when JavaScript allocates,
 * and a broker that goes quiet after a burst of large messages allocates next to nothing: in
 * bench/memory/large-messages.ts four 250 MB messages left 687 MB where the broker started at 153 MB.
 * So a few full collections are scheduled after the last large payload (and each new one moves them
 * later); `--expose-gc` is set at run time because the broker is started in many ways (docs/
 * development.md). Collections of a heap this small take tens of milliseconds.
 */
export function collectAfterLargePackets(client: Client): void {
  const parser = (client as unknown as { _parser: { on(e: 'packet', f: (p: { cmd: string; payload?: Buffer }) => void): void } })._parser;
  parser.on('packet', collectAfterLarge);
}

function collectAfterLarge(p: { cmd: string; payload?: Buffer }): void {
  if (p.cmd === 'publish' && p.payload && p.payload.length >= LARGE_PAYLOAD_BYTES) scheduleCollections();
}

function scheduleCollections(): void {
  if (!gc) {
    v8.setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
  }
  for (const t of timers) clearTimeout(t);
  timers = COLLECT_AFTER_MS.map((ms) => setTimeout(() => gc!(), ms).unref());
}
