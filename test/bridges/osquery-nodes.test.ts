import t from 'tap';
import { join } from 'node:path';
import { pino } from 'pino';
import { FileStore } from '../../bridges/shared/store.js';
import { NodeRegistry } from '../../bridges/osquery/nodes.js';
import { tempDir } from '../helpers/tmp.js';

const log = pino({ level: 'silent' });

t.test('osquery enrollment: node keys survive a store reopen (restart); bad secrets and keys are refused', async (t) => {
  const file = join(tempDir(), 'store.json');
  const store = new FileStore(file, log);
  const reg = new NodeRegistry(store, 's3cret');
  const key = await reg.enroll('s3cret', 'host-a', { os_version: { name: 'Ubuntu' } });
  t.match(key, /^[A-Za-z0-9_-]{43}$/);
  await t.rejects(reg.enroll('wrong', 'host-b', {}), { name: 'EnrollError' });
  await t.rejects(reg.enroll(42, 'host-b', {}), { name: 'EnrollError' });
  await t.rejects(reg.enroll('s3cret', '', {}), { name: 'EnrollError' });
  await t.rejects(reg.enroll('s3cret', 'x'.repeat(300), {}), { name: 'EnrollError' });
  const err = await reg.enroll('wrong-secret-value', 'h', {}).catch((e: Error) => e);
  t.notMatch(String(err), /wrong-secret-value/, 'the presented secret is not echoed');
  await store.close();

  const reopened = new NodeRegistry(new FileStore(file, log), 's3cret');
  const node = await reopened.checkIn(key);
  t.equal(node?.hostIdentifier, 'host-a');
  t.same(node?.hostDetails, { os_version: { name: 'Ubuntu' } });
  t.equal(await reopened.checkIn('A'.repeat(43)), undefined, 'guessed key');
  t.equal(await reopened.checkIn('node:../x'), undefined, 'malformed key');
  t.equal(await reopened.checkIn({}), undefined, 'non-string key');
  t.same([...(await reopened.nodes()).keys()], [key]);
});
