import t from 'tap';
import { gzipSync } from 'node:zlib';
import { decodeBody } from '../../bridges/osquery/body.js';

const LIMIT = 64 * 1024;

t.test('osquery request bodies: plain and gzip JSON decode', async (t) => {
  const body = { node_key: 'k', log_type: 'result', data: [{ name: 'q', action: 'added' }] };
  t.same(decodeBody(Buffer.from(JSON.stringify(body)), undefined, LIMIT), body);
  t.same(decodeBody(gzipSync(JSON.stringify(body)), 'gzip', LIMIT), body);
  t.same(decodeBody(gzipSync(JSON.stringify(body)), ' GZIP ', LIMIT), body);
});

t.test('osquery request bodies: hostile input gets a clear status', async (t) => {
  const bomb = gzipSync(Buffer.alloc(50 * 1024 * 1024, 0x20));
  t.ok(bomb.length < LIMIT, 'the bomb itself is small');
  t.throws(() => decodeBody(bomb, 'gzip', LIMIT), { status: 413, message: /inflated request body over/ });
  t.throws(() => decodeBody(Buffer.alloc(LIMIT + 1, 0x20), undefined, LIMIT), { status: 413, message: /request body over/ });
  t.throws(() => decodeBody(Buffer.from('not gzip'), 'gzip', LIMIT), { status: 400, message: /not valid gzip/ });
  t.throws(() => decodeBody(Buffer.from('{"a":'), undefined, LIMIT), { status: 400, message: /not valid JSON/ });
  const deep = Buffer.from(`{"a":${'['.repeat(30_000)}${']'.repeat(30_000)}}`); // under the size limit
  t.throws(() => decodeBody(deep, undefined, LIMIT), { status: 400, message: /nested deeper than 1000 levels/ });
  t.throws(() => decodeBody(Buffer.from('[1,2]'), undefined, LIMIT), { status: 400, message: /JSON object/ });
  t.throws(() => decodeBody(Buffer.from('null'), undefined, LIMIT), { status: 400, message: /JSON object/ });
  t.throws(() => decodeBody(Buffer.from('{}'), 'br', LIMIT), { status: 415, message: /not supported/ });
});
