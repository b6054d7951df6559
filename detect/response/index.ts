/**
 * Responses to alerts (docs/detection.md, Responses): `detect_response <rule> ban <duration>`
 * refuses the alert's entity at CONNECT and disconnects its live sessions, `disconnect` ends them
 * once. Every response is a capture event (`response-ban`, `response-disconnect`, `ban-lifted`);
 * `detect_response_mode log` records what would have been done and does nothing.
 */
import type { Logger } from 'pino';
import type { AlertEvent } from '../alert.js';
import type { ConnectFacts, ConnectGuard } from '../../broker/engine/api.js';
import { ConfigError } from '../../broker/config/errors.js';
import { BanList, parseEntity, type Ban, type Who } from './bans.js';
import { exempt } from './allow.js';
import type { AllowList, ResponseConfig } from './config.js';

export { BanList, fileStore, memoryStore, redisStore, type Ban } from './bans.js';

/** The retained topic listing the bans in force (at most SYS_LIST of them, the newest). */
export const BANS_TOPIC = '$SYS/broker/bans';
const SYS_LIST = 1000;
/** Response events per minute; beyond, they are counted and the next one says how many were held back. */
export const EVENTS_PER_MINUTE = 100;

/** The broker as responses use it (BrokerApi's functions, and a retained publish). */
export interface ResponseBroker {
  guardConnects(guard: ConnectGuard): void;
  disconnect(match: (who: ConnectFacts) => boolean): number;
  publishRetained(topic: string, payload: string): void;
}

export interface ResponseDeps {
  broker: ResponseBroker;
  bans: BanList;
  /** Records a capture event (capture's `emit`). */
  emit(event: { event: { action: string } & Record<string, unknown> } & Record<string, unknown>): void;
  log: Logger;
  /** Known rule names: a `detect_response` naming another is a configuration error. */
  rules: readonly string[];
}

export interface Responses {
  /** One alert (capture events of kind alert); raised alerts of rules with a response act. */
  onAlert(alert: AlertEvent): void;
  /** Loads the bans in force (persistence, Redis), installs the CONNECT guard and the expiry tick. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** `ip 10.0.0.7` → the facts it names, for the allow-list and for matching live sessions. */
function factsOf(entity: string): Who {
  const [kind, value] = parseEntity(entity)!;
  return kind === 'ip' ? { ip: value } : kind === 'client' ? { clientId: value } : { username: value };
}

/** The live sessions of an entity, the allow-listed ones left alone. */
const sessionMatches = (entity: string, allow: AllowList) => {
  const f = factsOf(entity);
  return (who: ConnectFacts) =>
    ((f.ip !== undefined && who.ip === f.ip) ||
      (f.clientId !== undefined && who.clientId === f.clientId) ||
      (f.username !== undefined && who.username === f.username)) &&
    !exempt(allow, who);
};

/** ECS fields of an entity: `source.ip`, `mqtt.client_id`, `user.name`. */
function entityFields(entity: string): Record<string, unknown> {
  const f = factsOf(entity);
  if (f.ip !== undefined) return { source: { ip: f.ip } };
  if (f.clientId !== undefined) return { mqtt: { client_id: f.clientId } };
  return { user: { name: f.username } };
}

export function createResponses(config: ResponseConfig, deps: ResponseDeps): Responses {
  for (const [rule, { pos }] of config.actions)
    if (!deps.rules.includes(rule))
      throw new ConfigError(pos, 'detect_response', `unknown or switched-off rule "${rule}"; the rules on are ${deps.rules.join(', ')}`);
  const log = deps.log.child({ name: 'detect.response' });
  const dryRun = config.mode === 'log';
  let minute = 0;
  let sent = 0;
  let heldBack = 0;
  let timer: NodeJS.Timeout | undefined;

  const record = (action: string, entity: string, message: string, response: Record<string, unknown>, rule?: string) => {
    const now = Date.now();
    const m = Math.floor(now / 60_000);
    if (m !== minute) {
      minute = m;
      sent = 0;
    }
    if (sent >= EVENTS_PER_MINUTE) {
      if (heldBack++ === 0) log.warn(`more than ${EVENTS_PER_MINUTE} response events within a minute: holding the rest back`);
      return;
    }
    sent++;
    const held = heldBack;
    heldBack = 0;
    log.warn({ entity, action, dry_run: dryRun || undefined }, message);
    deps.emit({
      message,
      event: {
        action,
        kind: 'event',
        category: ['intrusion_detection'],
        type: [action === 'ban-lifted' ? 'end' : 'denied'],
        outcome: 'success',
      },
      ...(rule ? { rule: { name: rule, ruleset: 'mqprobe' } } : {}),
      ...entityFields(entity),
      mqprobe: { response: { entity, ...response, ...(dryRun ? { dry_run: true } : {}), ...(held ? { held_back: held } : {}) } },
    });
  };

  const publishList = () => {
    const list = deps.bans
      .list()
      .sort((a, b) => b.since.localeCompare(a.since))
      .slice(0, SYS_LIST);
    deps.broker.publishRetained(BANS_TOPIC, JSON.stringify({ count: deps.bans.size, bans: list }));
  };

  deps.bans.onChange((c) => {
    publishList();
    if (c.lifted && c.here) record('ban-lifted', c.entity, `ban of ${c.entity} lifted`, { action: 'lift' });
    // a ban made by another process (Redis): its live sessions here end too
    if (!c.lifted && !c.here && c.ban && !dryRun) deps.broker.disconnect(sessionMatches(c.entity, config.allow));
  });

  const act = async (alert: AlertEvent) => {
    const setting = config.actions.get(alert.rule.name);
    if (!setting || alert.event.action !== 'alert-raised') return;
    let entity = alert.mqprobe.detect.entity;
    // rules about topics: the response applies to the client that published
    if (!parseEntity(entity)) {
      if (alert.mqtt?.client_id === undefined) return;
      entity = `client ${alert.mqtt.client_id}`;
    }
    const who: Who = { ip: alert.source?.ip, clientId: alert.mqtt?.client_id, username: alert.user?.name, ...factsOf(entity) };
    if (exempt(config.allow, who)) {
      log.info({ entity, rule: alert.rule.name }, `${entity} is on the detect_allow list (or internal): no response`);
      return;
    }
    const rule = alert.rule.name;
    if (setting.action.kind === 'disconnect') {
      const n = dryRun ? 0 : deps.broker.disconnect(sessionMatches(entity, config.allow));
      record(
        'response-disconnect',
        entity,
        `${rule}: ${dryRun ? 'would disconnect' : `disconnected ${n} session(s) of`} ${entity}`,
        { action: 'disconnect', disconnected: n },
        rule,
      );
      return;
    }
    const since = new Date();
    const until = new Date(since.getTime() + setting.action.ms);
    const ban: Ban = { entity, rule, since: since.toISOString(), until: until.toISOString() };
    if (!dryRun && !(await deps.bans.add(ban))) {
      log.error(`ban list full: ${entity} not banned`);
      return;
    }
    const n = dryRun ? 0 : deps.broker.disconnect(sessionMatches(entity, config.allow));
    record(
      'response-ban',
      entity,
      `${rule}: ${dryRun ? 'would ban' : 'banned'} ${entity} for ${setting.action.ms / 1000} s (until ${ban.until})${n ? `; ${n} session(s) disconnected` : ''}`,
      { action: 'ban', duration_s: setting.action.ms / 1000, until: ban.until, disconnected: n },
      rule,
    );
  };

  return {
    onAlert(alert) {
      act(alert).catch((err: Error) => log.error({ err: err.message, rule: alert.rule.name }, 'a response failed'));
    },
    async start() {
      await deps.bans.start();
      deps.broker.guardConnects((who) => {
        if (exempt(config.allow, who)) return undefined;
        return deps.bans.find(who) ? config.banAnswer : undefined;
      });
      if (deps.bans.size > 0) {
        log.info(`${deps.bans.size} ban(s) in force`);
        publishList();
      }
      timer = setInterval(
        () => void deps.bans.expire().catch((err: Error) => log.error({ err: err.message }, 'cannot lift expired bans')),
        1000,
      );
      timer.unref();
    },
    async stop() {
      clearInterval(timer);
      await deps.bans.close();
    },
  };
}
