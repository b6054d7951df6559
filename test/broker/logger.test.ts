import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger, mosquittoLineWriter } from '../../broker/logger.js';
import { defaultLogSettings } from '../../broker/log/settings.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/mqtt.js';

/** A root logger writing JSON lines to a new file, and a function that waits for `n` lines and returns them. */
function jsonFileLogger(logType: Set<string>) {
  const file = join(tempDir(), 'mqprobe.log');
  const root = createLogger({ logDest: [{ kind: 'file', path: file }], logType, log: { ...defaultLogSettings(), format: 'json' } });
  const read = () => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);
  const lines = async (n: number) => {
    await until(
      () => {
        root.flush();
        return read().length === n;
      },
      5000,
      `${n} log lines`,
    );
    return read();
  };
  return { root, lines };
}

t.test("log_format json: a module logger writes its name once, replacing its parent's (pino appends child bindings)", async (t) => {
  const { root, lines } = jsonFileLogger(new Set());
  const capture = root.child({ name: 'capture' });
  const detect = capture.child({ name: 'capture.detect' });
  root.info('root line');
  capture.info({ password: 'hunter2' }, 'capture line');
  detect.child({ rule: 'auth-failures' }).warn('detect line');
  root.child({ name: 'quote"d\\name' }).info('odd name');
  const raw = await lines(4);
  for (const line of raw) t.equal(line.split('"name":').length - 1, 1, `one name key: ${line}`);
  // the destinations write each line as it comes; which level's line lands first is not the point here
  const byMsg = new Map(
    raw.map((l) => JSON.parse(l) as { name: string; msg: string; rule?: string; password?: string }).map((p) => [p.msg, p]),
  );
  t.same(
    ['root line', 'capture line', 'detect line', 'odd name'].map((m) => byMsg.get(m)?.name),
    ['mqprobe', 'capture', 'capture.detect', 'quote"d\\name'],
  );
  t.equal(byMsg.get('detect line')?.rule, 'auth-failures', 'other bindings stay');
  t.equal(byMsg.get('capture line')?.password, '[redacted]', 'redaction still applies');
});

t.test("Mosquitto's line writer writes the bytes the root logger writes, at its level; the root still redacts", async (t) => {
  const { root, lines: written } = jsonFileLogger(new Set(['notice', 'error', 'warning', 'information']));
  const write = mosquittoLineWriter(root);
  const texts = [
    'New client connected from 127.0.0.1:1 as a "b" (p2, c1, k60).',
    'Client back\\slash\nnew line ü \u2028 \u0001 disconnected.',
  ];
  for (const text of texts) {
    root.info({ log_type: 'notice' }, text);
    write('notice', text);
  }
  root.error({ log_type: 'error' }, 'e');
  write('error', 'e');
  root.warn({ log_type: 'warning' }, 'w');
  write('warning', 'w');
  write('debug', 'not written: the level is info');
  root.info({ password: 'hunter2' }, 'root secret');
  const raw = await written(9);
  const noTime = (l: string) => l.replace(/"time":\d+/, '"time":0');
  for (let i = 0; i < 8; i += 2) t.equal(noTime(raw[i + 1]), noTime(raw[i]), `line ${i / 2}: the same bytes`);
  t.equal((JSON.parse(raw[8]) as Record<string, unknown>).password, '[redacted]', 'the root logger keeps redacting');
});

t.test("Mosquitto's line writer in log_format mosquitto: the same text, a newline inside replaced", async (t) => {
  const file = join(tempDir(), 'mqprobe.log');
  const root = createLogger({ logDest: [{ kind: 'file', path: file }], logType: new Set(['all']), log: defaultLogSettings() });
  const write = mosquittoLineWriter(root);
  root.debug({ log_type: 'debug' }, 'Sending CONNACK to a\nb (0, 0)');
  write('debug', 'Sending CONNACK to a\nb (0, 0)');
  root.flush();
  await until(() => existsSync(file) && readFileSync(file, 'utf8').split('\n').filter(Boolean).length === 2, 5000, 'two lines');
  const [a, b] = readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.replace(/^\d+: /, ''));
  t.equal(a, 'Sending CONNACK to a b (0, 0)');
  t.equal(b, a);
});

t.test("Mosquitto's line writer on a logger not made by createLogger logs through it", async (t) => {
  const got: Record<string, unknown>[] = [];
  const plain = (await import('pino')).default(
    { level: 'debug' },
    { write: (s: string) => void got.push(JSON.parse(s) as Record<string, unknown>) },
  );
  mosquittoLineWriter(plain)('warning', 'Client x has exceeded timeout, disconnecting.');
  t.match(got, [{ level: 40, log_type: 'warning', msg: 'Client x has exceeded timeout, disconnecting.' }]);
});
