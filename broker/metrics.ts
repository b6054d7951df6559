import { Counter, Gauge, type Registry } from 'prom-client';

/**
 * Get-or-create for prom-client metrics: several beats, and a beat restarted by the frame, share
 * one metric per name (told apart by labels) instead of registering it twice.
 */
export function counter<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[]): Counter<L> {
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Counter<L>;
  return new Counter({ name, help, labelNames, registers: [registry] });
}

export function gauge<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[]): Gauge<L> {
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Gauge<L>;
  return new Gauge({ name, help, labelNames, registers: [registry] });
}

/**
 * Gauges read from a list of named things (bridges) each time /metrics is scraped: `value` is one
 * series per item, `state` one series per item and state, 1 for the state the item is in.
 */
export function itemGauges<T>(registry: Registry, prefix: string, label: string, items: readonly T[], nameOf: (item: T) => string) {
  return {
    value(name: string, help: string, read: (item: T) => number): void {
      new Gauge({
        name: `${prefix}${name}`,
        help,
        labelNames: [label],
        registers: [registry],
        collect() {
          this.reset(); // an item gone from the list (a bridge removed by a reload) leaves no series behind
          for (const item of items) this.set({ [label]: nameOf(item) }, read(item));
        },
      });
    },
    state<S extends string>(help: string, states: readonly S[], stateOf: (item: T) => S): void {
      new Gauge({
        name: `${prefix}state`,
        help,
        labelNames: [label, 'state'],
        registers: [registry],
        collect() {
          this.reset();
          for (const item of items) for (const s of states) this.set({ [label]: nameOf(item), state: s }, stateOf(item) === s ? 1 : 0);
        },
      });
    },
  };
}
