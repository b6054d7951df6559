import mqemitter from 'mqemitter';

type Done = (err?: Error) => void;
interface EmitterInternals {
  _do(message: { topic: string }, cb: Done): unknown;
}

/**
 * Works around a stack overflow in mqemitter 7.1.0 (the latest release, used by Aedes 1.2.0
 * and by mqemitter-redis).
 *
 * Root cause: when the emitter is at its concurrency limit, new messages wait in a queue. Each
 * completed message calls `released()`, which takes the next queued message and calls `_do()`
 * synchronously. If that message completes synchronously too — which happens as soon as no
 * listener matches, e.g. right after the only subscriber of a flooded topic disconnects —
 * fastparallel calls `released()` again from inside `_do()`, and the whole backlog (tens of
 * thousands of messages under a QoS 0 flood) is drained by recursion until
 * `RangeError: Maximum call stack size exceeded` kills the process.
 *
 * The fix turns that recursion into a loop: a `_do()` entered while another `_do()` is still on
 * the stack is queued and run by the outer call once it returns. Order is unchanged (FIFO), and
 * asynchronous completions, the normal case, take the original path untouched.
 */
export function makeReentrancySafe<T extends object>(emitter: T): T {
  const e = emitter as T & EmitterInternals;
  const original = e._do;
  const pending: [{ topic: string }, Done][] = [];
  let running = false;
  e._do = function (message, cb) {
    if (running) {
      pending.push([message, cb]);
      return this;
    }
    running = true;
    try {
      original.call(this, message, cb);
      for (let i = 0; i < pending.length; i++) original.call(this, pending[i][0], pending[i][1]);
    } finally {
      pending.length = 0;
      running = false;
    }
    return this;
  };
  return emitter;
}

/** Aedes' default in-process emitter (same concurrency), made safe against the recursion above. */
export function createSafeEmitter(concurrency = 100): unknown {
  return makeReentrancySafe(mqemitter({ concurrency }));
}
