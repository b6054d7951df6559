import { beatDefinitions } from '../../bridges/index.js';
import type { BeatDefinition, BridgeContext, CommonBeatConfig } from '../../bridges/contract.js';
import type { Teardown } from '../helpers/broker.js';

export interface ProbeConfig {
  label?: string;
}

export interface ProbeHooks {
  /** Called by create(); may throw to test a factory failure. */
  create?(attempt: number): void;
  start?(ctx: BridgeContext, attempt: number): Promise<void> | void;
  stop?(ctx: BridgeContext, attempt: number): Promise<void> | void;
}

export interface ProbeBeat {
  /** create() calls so far. */
  attempts: number;
  starts: number;
  stops: number;
  contexts: BridgeContext[];
  configs: { cfg: ProbeConfig; common: CommonBeatConfig }[];
}

/**
 * A small beat written for frame tests, registered in the real beat registry (and removed in
 * teardown) so that configs naming it load, validate and run through the real frame and broker.
 * It has one key, `<name>_label`; what it does on start and stop the test decides.
 */
export function defineProbeBeat(t: Teardown, name: string, hooks: ProbeHooks = {}): ProbeBeat {
  const state: ProbeBeat = { attempts: 0, starts: 0, stops: 0, contexts: [], configs: [] };
  const def: BeatDefinition<ProbeConfig> = {
    name,
    doc: `Test beat ${name}.`,
    keys: [
      {
        key: `${name}_label`,
        usage: '<text>',
        doc: 'A label.',
        scope: 'beat',
        set(c, v) {
          c.label = v.count(1).word();
        },
      },
    ],
    defaults: () => ({}),
    create(cfg, common) {
      const attempt = ++state.attempts;
      hooks.create?.(attempt);
      state.configs.push({ cfg, common });
      let ctx: BridgeContext | undefined;
      return {
        async start(c) {
          ctx = c;
          state.starts++;
          state.contexts.push(c);
          await hooks.start?.(c, attempt);
        },
        async stop() {
          state.stops++;
          if (ctx) await hooks.stop?.(ctx, attempt);
        },
      };
    },
  };
  beatDefinitions.push(def);
  t.teardown(() => {
    const i = beatDefinitions.indexOf(def);
    if (i >= 0) beatDefinitions.splice(i, 1);
  });
  return state;
}
