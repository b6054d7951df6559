/**
 * The json_lines (logstash) sink when its receiver stops reading and then dies: TCP has taken
 * events nobody will read, and json_lines has no acknowledgement to tell. The receiver here is a
 * plain TCP server reading newline-delimited JSON (what Logstash's tcp input with json_lines does);
 * the loss must not be silent: the broker's log names an upper bound of it.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { startTestBroker, tempDir, type Teardown } from '../helpers/broker.js';
import { connectClient, until } from '../helpers/mqtt.js';

/** A json_lines reader on `port`; `stall()` stops reading, `die()` resets every connection with its unread bytes. */
async function jsonLinesReceiver(t: Teardown, port = 0) {
  const ids = new Set<string>();
  const socks = new Set<net.Socket>();
  let rest = '';
  const srv = net.createServer((s) => {
    socks.add(s);
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      const lines = (rest + d).split('\n');
      rest = lines.pop()!;
      for (const l of lines) ids.add((JSON.parse(l) as { event: { id: string } }).event.id);
    });
    s.on('error', () => {});
    s.on('close', () => socks.delete(s));
  });
  await new Promise<void>((r) => srv.listen(port, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of socks) s.destroy();
    srv.close();
  });
  return {
    port: (srv.address() as net.AddressInfo).port,
    ids,
    stall: () => socks.forEach((s) => s.pause()),
    die: async () => {
      for (const s of socks) s.resetAndDestroy();
      await new Promise((r) => srv.close(r));
    },
  };
}

t.test('logstash json_lines: receiver stops reading under load, then dies; what is lost is bounded in the log, not silent', async (t) => {
  const first = await jsonLinesReceiver(t);
  const dir = tempDir();
  const b = await startTestBroker(
    t,
    `listener 0 127.0.0.1\nallow_anonymous true\ncapture_sink logstash tcp://127.0.0.1:${first.port}\ncapture_spool_dir ${join(dir, 'spool')}\ncapture_payload full\n`,
    { dir },
  );
  const c = await connectClient(t, b.mqttUrl, { clientId: 'loader' });
  const payload = Buffer.alloc(500, 'p');
  const load = async (n: number) => {
    for (let i = 0; i < n; i += 100) {
      for (let j = 0; j < 100; j++) c.publish('load/t', payload);
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  await load(2000);
  first.stall();
  await load(8000);
  await first.die();
  await load(1000);
  const second = await jsonLinesReceiver(t, first.port);
  await load(1000);
  await c.endAsync();
  await b.broker.close();
  const n = b.broker.capture.stats().recorded;
  // stop() returned once the last write was taken by the kernel; the receiver reads it a moment later
  await until(() => second.ids.size > 0, 5_000, 'the second receiver reading');
  await new Promise((r) => setTimeout(r, 500));
  const all = new Set([...first.ids, ...second.ids]);
  const missing = n - all.size;
  const log = readFileSync(b.logFile, 'utf8');
  const bounds = [...log.matchAll(/up to (\d+) events written before the resend window may be lost/g)].map((m) => Number(m[1]));
  const bound = bounds.reduce((a, x) => a + x, 0);
  t.comment(
    `${n} events recorded, ${missing} never arrived (counted as delivered: ${b.broker.capture.stats().sinks[0].delivered}); the log bounds the loss at ${bound}; ${all.size} distinct arrived`,
  );
  t.ok(missing > 0, 'TCP took events the dead receiver never read (the failure mode this test exists for)');
  t.ok(bounds.length > 0, 'the log says events may be lost');
  t.ok(missing <= bound, `the loss (${missing}) is within the bound the log names (${bound})`);
  t.equal(b.broker.capture.stats().sinks[0].dropped, 0, 'the sink itself dropped nothing: the loss happened past it');
});
