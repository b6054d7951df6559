import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderRuleReference, withReference } from '../../detect/docs.js';
import { COMMON_PARAMS } from '../../detect/params.js';
import { RULE_SPECS } from '../../detect/rules/index.js';
import { repoRoot } from '../helpers/paths.js';

t.test('docs/detection.md documents every rule, parameter and default as the code declares them', async (t) => {
  const page = readFileSync(join(repoRoot, 'docs', 'detection.md'), 'utf8');
  t.equal(withReference(page), page, 'the generated rule reference is current (npx tsx detect/docs.ts --write)');
  const reference = renderRuleReference();
  for (const spec of RULE_SPECS) {
    t.ok(page.includes(`### ${spec.name}\n`), `${spec.name} has its section`);
    for (const p of [...spec.params, ...COMMON_PARAMS]) t.ok(reference.includes(`| \`${p.name}\` |`), `${spec.name} ${p.name}`);
  }
  t.throws(() => withReference('no markers'), /no rules:begin\/rules:end markers/);
});
