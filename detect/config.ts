import type { KeySpec } from '../broker/config/spec.js';
import type { SourcePos } from '../broker/config/errors.js';
import { defaultResponseConfig, responseKeys, type ResponseConfig } from './response/config.js';

/** Rule settings as written; the detectors validate names and parameters when they start. */
export interface DetectRuleSetting {
  enabled?: boolean;
  params: Map<string, { value: string; pos: SourcePos }>;
  pos: SourcePos;
}

export interface DetectConfig {
  enabled: boolean;
  rules: Map<string, DetectRuleSetting>;
  /** detect_response, detect_allow, detect_ban_answer, detect_response_mode, detect_admin_user. */
  response: ResponseConfig;
}

export function defaultDetectConfig(): DetectConfig {
  return { enabled: true, rules: new Map(), response: defaultResponseConfig() };
}

export const detectKeys: KeySpec<DetectConfig>[] = [
  {
    key: 'detect',
    usage: 'on | off',
    doc: 'Runs the in-broker detectors on the capture stream (see docs/detection.md).',
    default: 'on',
    scope: 'global',
    set(c, v) {
      v.count(1);
      c.enabled = v.onOff();
    },
  },
  {
    key: 'detect_rule',
    usage: '<rule name> off | on | <param> <value>',
    doc: 'Switches one detection rule off or on, or sets one of its parameters (documented per rule in docs/detection.md).',
    scope: 'global',
    repeatable: true,
    set(c, v) {
      v.count(2, 3);
      const name = v.word(0);
      const rule: DetectRuleSetting = c.rules.get(name) ?? { params: new Map(), pos: v.line };
      if (v.line.args.length === 2) rule.enabled = v.onOff(1);
      else rule.params.set(v.word(1), { value: v.word(2), pos: v.line });
      c.rules.set(name, rule);
    },
  },
  ...(responseKeys as KeySpec<DetectConfig>[]),
];
