/**
 * The rule reference of docs/detection.md, generated from the rule declarations so the page
 * cannot drift from the code (test/detect/docs.test.ts compares them). Rewrite the page's
 * section with `npx tsx detect/docs.ts --write`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { COMMON_PARAMS, RISK_SCORES, type ParamSpec, type RuleSpec } from './params.js';
import { RULE_SPECS } from './rules/index.js';

export const BEGIN = '<!-- rules:begin (generated from detect/rules; npx tsx detect/docs.ts --write) -->';
export const END = '<!-- rules:end -->';

const cell = (s: string) => s.replace(/\|/g, '\\|');

function paramRows(spec: RuleSpec, params: ParamSpec[]): string[] {
  return params.map((p) => {
    const def = p.name === 'risk_score' ? String(RISK_SCORES[spec.risk]) : p.default;
    return `| \`${p.name}\` | ${p.kind} | \`${cell(def)}\` | ${cell(p.doc)} |`;
  });
}

export function renderRuleReference(): string {
  const out: string[] = [BEGIN, ''];
  out.push('| rule | entity | risk | minimum intensity caught with the defaults |', '| --- | --- | --- | --- |');
  for (const s of RULE_SPECS)
    out.push(`| [\`${s.name}\`](#${s.name}) | \`${s.entity}\` | ${s.risk} (${RISK_SCORES[s.risk]}) | ${cell(s.minimum)} |`);
  for (const s of RULE_SPECS) {
    out.push(
      '',
      `### ${s.name}`,
      '',
      s.description,
      '',
      `Entity: \`${s.entity}\`. Risk: ${s.risk} (\`event.risk_score\` ${RISK_SCORES[s.risk]}). Minimum: ${s.minimum}.`,
      '',
    );
    out.push('| parameter | kind | default | meaning |', '| --- | --- | --- | --- |', ...paramRows(s, [...s.params, ...COMMON_PARAMS]));
  }
  out.push('', END);
  return out.join('\n');
}

/** The page with its generated section replaced. */
export function withReference(page: string): string {
  const from = page.indexOf(BEGIN);
  const to = page.indexOf(END);
  if (from < 0 || to < from) throw new Error('docs/detection.md has no rules:begin/rules:end markers');
  return page.slice(0, from) + renderRuleReference() + page.slice(to + END.length);
}

if (process.argv[2] === '--write') {
  const file = new URL('../docs/detection.md', import.meta.url);
  writeFileSync(file, withReference(readFileSync(file, 'utf8')));
}
