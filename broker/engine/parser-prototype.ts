import type { Client } from './vendor/aedes/aedes.js';

/** Which wraps each parser prototype already has. */
const installed = new WeakMap<object, Set<(proto: never) => void>>();

/**
 * The mqtt-packet parser of an Aedes client, after `wrap` was applied, once, to its prototype: a
 * check on every parser costs a property per connection instead of closures per connection.
 */
export function wrappedParser<P extends object>(client: Client, wrap: (proto: P) => void): P {
  const parser = (client as unknown as { _parser: P })._parser;
  const proto = Object.getPrototypeOf(parser) as P;
  let done = installed.get(proto);
  if (!done) installed.set(proto, (done = new Set()));
  if (!done.has(wrap)) {
    done.add(wrap);
    wrap(proto);
  }
  return parser;
}
