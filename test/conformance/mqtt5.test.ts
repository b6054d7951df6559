/**
 * MQTT 5.0 conformance: every row of mqtt5.ts (normative statements a server must satisfy that a client
 * can observe) against mqprobe and Mosquitto 2.0.11, with raw packets. Also: docs/conformance.md is
 * what test/conformance/doc.ts makes of both tables.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { repoRoot } from '../helpers/paths.js';
import { conformancePage } from './doc.js';
import { mqtt311 } from './mqtt311.js';
import { mqtt5 } from './mqtt5.js';
import { runSuite } from './statements.js';

t.test('docs/conformance.md is generated from the tables, and no statement is both probed and called untestable', async (t) => {
  t.equal(
    readFileSync(join(repoRoot, 'docs', 'conformance.md'), 'utf8'),
    conformancePage(),
    'regenerate: npx tsx test/conformance/doc.ts > docs/conformance.md',
  );
  for (const suite of [mqtt311, mqtt5]) {
    const probed = new Set(suite.statements.flatMap((s) => s.ids));
    t.same(
      suite.untestable.flatMap((u) => u.ids).filter((id) => probed.has(id)),
      [],
      suite.title,
    );
  }
});

runSuite(mqtt5);
