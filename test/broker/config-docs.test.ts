import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderConfigDocs } from '../../app/config.js';
import { beatDocSections } from '../../bridges/index.js';
import { repoRoot } from '../helpers/paths.js';

t.test('docs/configuration.md is exactly what the key specifications generate (no drift)', async (t) => {
  const committed = readFileSync(join(repoRoot, 'docs', 'configuration.md'), 'utf8');
  t.equal(committed, renderConfigDocs(beatDocSections()), 'regenerate with `npm run docs:config` after changing a key');
});

t.test('the generated reference documents the keys users look for', async (t) => {
  const text = renderConfigDocs(beatDocSections());
  const keys = [...text.matchAll(/^\| `([a-z0-9_.]+)` \|/gm)].map((m) => m[1]);
  t.ok(keys.length > 60, `${keys.length} keys documented`);
  for (const k of [
    'listener',
    'password_file',
    'acl_file',
    'persistence_redis_url',
    'capture_sink',
    'detect',
    'max_queued_bytes',
    'beat_format',
    'zeek_log_dir',
    'fleet_result_log',
  ]) {
    t.ok(keys.includes(k), `${k} is documented`);
  }
});
