import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger, unredactedLogger } from '../../broker/logger.js';
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

t.test('the unredacted logger of client lines writes what the root writes, at its level; the root still redacts', async (t) => {
  const { root, lines: written } = jsonFileLogger(new Set(['all']));
  const lines = unredactedLogger(root);
  t.not(lines, root, 'a logger of its own');
  t.equal(lines.level, root.level);
  root.info({ log_type: 'notice' }, 'New client connected from 127.0.0.1:1 as a "b" (p2, c1, k60).');
  lines.info({ log_type: 'notice' }, 'New client connected from 127.0.0.1:1 as a "b" (p2, c1, k60).');
  root.info({ password: 'hunter2' }, 'root secret');
  const [a, b, c] = (await written(3)).map((l) => JSON.parse(l) as Record<string, unknown>);
  const noTime = ({ time: _, ...rest }: Record<string, unknown>) => rest;
  t.same(noTime(b), noTime(a), 'same fields, same values');
  t.same(Object.keys(b), Object.keys(a), 'same order');
  t.equal(c.password, '[redacted]', 'the root logger keeps redacting');
  const plain = (await import('pino')).default();
  t.equal(unredactedLogger(plain), plain, 'a logger not made by createLogger is returned as it is');
});
