/**
 * Load generator process: takes one job from the coordinator over IPC, runs it, answers with the
 * result, and keeps its connections open until the coordinator has stopped the broker and kills it.
 */
import type { GeneratorMessage, Job } from './load/jobs.js';
import { runConnect } from './load/connect.js';
import { runFlow } from './load/flow.js';

const send = (m: GeneratorMessage) => process.send?.(m);
if (!process.send) {
  process.stderr.write('bench generator: start me from the bench harness (an IPC channel is needed)\n');
  process.exit(2);
}
process.on('disconnect', () => process.exit(0));
process.once('message', (job: Job) => {
  const progress = (phase: string, done?: number, total?: number) => send({ type: 'progress', phase, done, total });
  const run = job.kind === 'flow' ? runFlow(job, progress) : runConnect(job, progress);
  run.then(
    (result) => send({ type: 'result', result }),
    (err: Error) => send({ type: 'error', message: err.message }),
  );
});
