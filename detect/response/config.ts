import ipaddr from 'ipaddr.js';
import type { KeySpec } from '../../broker/config/spec.js';

/** What a rule's alert makes the broker do (`detect_response <rule> ban <duration>|disconnect`). */
export type ResponseAction = { kind: 'ban'; ms: number } | { kind: 'disconnect' };

/** Never banned nor disconnected: `detect_allow <cidr>|client:<glob>|user:<glob>` (a glob is a name or a prefix ending in `*`). */
export interface AllowList {
  cidrs: [ipaddr.IPv4 | ipaddr.IPv6, number][];
  clients: string[];
  users: string[];
}

export interface ResponseConfig {
  /** Per rule name; checked against the known rules when detection starts. */
  actions: Map<string, { action: ResponseAction; pos: { file: string; line: number } }>;
  allow: AllowList;
  /** How a banned entity is refused: CONNACK 5 (0x87 in MQTT 5), or the connection closed before any CONNACK. */
  banAnswer: 'connack' | 'close';
  /** `log`: record what would have been done (events with `mqprobe.response.dry_run: true`), do nothing. */
  mode: 'act' | 'log';
  /** Broker users (HTTP Basic or bearer token) who may list and lift bans on the HTTP listener. */
  adminUsers: string[];
}

export function defaultResponseConfig(): ResponseConfig {
  return { actions: new Map(), allow: { cidrs: [], clients: [], users: [] }, banAnswer: 'connack', mode: 'act', adminUsers: [] };
}

/** Longest ban: a year (a mistyped `ban 10000d` should not outlive the broker's hardware). */
const MAX_BAN = '365d';

export const responseKeys: KeySpec<{ response: ResponseConfig }>[] = [
  {
    key: 'detect_response',
    usage: '<rule name> ban <duration> | <rule name> disconnect',
    doc: "What an alert of the rule does: `ban` refuses the alert's entity (source address, client id or user name) at CONNECT for the duration and disconnects its live sessions; `disconnect` ends the offending sessions once (docs/detection.md, Responses).",
    scope: 'global',
    repeatable: true,
    set(c, v) {
      v.count(2, 3);
      const rule = v.word(0);
      const kind = v.oneOf(['ban', 'disconnect'] as const, 1);
      if (kind === 'ban') {
        if (v.line.args.length !== 3) v.fail('ban needs a duration, e.g. `ban 10m`');
        c.response.actions.set(rule, { action: { kind, ms: v.durationMs(2, { min: '1s', max: MAX_BAN }) }, pos: v.line });
      } else {
        if (v.line.args.length !== 2) v.fail('disconnect takes no duration');
        c.response.actions.set(rule, { action: { kind }, pos: v.line });
      }
    },
  },
  {
    key: 'detect_allow',
    usage: '<address or CIDR> | client:<glob> | user:<glob>',
    doc: 'Never banned nor disconnected by a response (alerts are still raised). A glob is a name, or a prefix ending in `*`. Internal clients are never banned; loopback is not exempt unless listed.',
    scope: 'global',
    repeatable: true,
    set(c, v) {
      const s = v.count(1).word(0);
      if (s.startsWith('client:') || s.startsWith('user:')) {
        const glob = s.slice(s.indexOf(':') + 1);
        if (glob === '' || glob.slice(0, -1).includes('*')) v.fail(`expected a name or a prefix ending in *, got "${glob}"`);
        (s.startsWith('client:') ? c.response.allow.clients : c.response.allow.users).push(glob);
        return;
      }
      try {
        c.response.allow.cidrs.push(s.includes('/') ? ipaddr.parseCIDR(s) : cidrOf(ipaddr.parse(s)));
      } catch {
        v.fail(`expected an address, a CIDR range, client:<glob> or user:<glob>, got "${s}"`);
      }
    },
  },
  {
    key: 'detect_ban_answer',
    usage: 'connack | close',
    doc: 'How a banned client is refused: `connack` answers CONNACK 5 (not authorized; 0x87 in MQTT 5), as a wrong password would be; `close` closes the connection before any CONNACK.',
    default: 'connack',
    scope: 'global',
    set(c, v) {
      c.response.banAnswer = v.count(1).oneOf(['connack', 'close'] as const);
    },
  },
  {
    key: 'detect_response_mode',
    usage: 'act | log',
    doc: '`log` is a dry run: every response is recorded as a capture event marked `mqprobe.response.dry_run`, nothing is banned or disconnected.',
    default: 'act',
    scope: 'global',
    set(c, v) {
      c.response.mode = v.count(1).oneOf(['act', 'log'] as const);
    },
  },
  {
    key: 'detect_admin_user',
    usage: '<user name>',
    doc: 'A broker user (HTTP Basic with its password, or a `http_token_file` token) allowed to list and lift bans at `GET /bans` and `DELETE /bans/<entity>` on the HTTP listener. Without one, those routes answer 403 to everyone.',
    scope: 'global',
    repeatable: true,
    set(c, v) {
      c.response.adminUsers.push(v.count(1).word(0));
    },
  },
];

function cidrOf(a: ipaddr.IPv4 | ipaddr.IPv6): [ipaddr.IPv4 | ipaddr.IPv6, number] {
  return [a, a.kind() === 'ipv4' ? 32 : 128];
}
