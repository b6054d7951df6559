import t from 'tap';
import { LineBuffer } from '../../capture/sinks/line-buffer.js';

t.test('LineBuffer: lines as UTF-8, one newline each, across growth and reuse', async (t) => {
  const b = new LineBuffer();
  const text = (lines: string[]) => lines.map((l) => `${l}\n`).join('');
  const small = ['{"a":1}', 'é ü 中文 🚀', '', '\ud800 lone surrogate'];
  // the bytes the sinks wrote before, when they handed the joined string to the socket
  t.same(
    b.encode(small),
    Buffer.from(text(small), 'utf8'),
    'multi-byte and empty lines; a lone surrogate becomes U+FFFD as Buffer.from makes it',
  );
  t.same(b.encode(['🚀']), Buffer.from('🚀\n'), 'a 4-byte character');
  const big = Array.from({ length: 3000 }, (_, i) => `${'中'.repeat(i % 97)}-${i}`);
  const out = b.encode(big);
  t.ok(out.length > 64 * 1024, `grew past the first 64 KiB (${out.length} bytes)`);
  t.equal(out.toString('utf8'), text(big), 'a batch larger than the buffer');
  t.equal(b.encode(['x']).toString('utf8'), 'x\n', 'reused for a small batch: only the new bytes');
  t.equal(b.encode([]).length, 0, 'an empty batch is empty');
});
