/** What each engine answers to each probe of probes.ts: the evidence behind the table in docs/engine.md. */
export const EXPECTED: Record<'aedes-1.2' | 'aedes-2.0.0-beta.1' | 'mosquitto', Record<string, string>> = {
  'aedes-1.2': {},
  'aedes-2.0.0-beta.1': {},
  mosquitto: {},
};
