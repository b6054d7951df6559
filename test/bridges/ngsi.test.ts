import t from 'tap';
import { toNgsiEntity, attributeName } from '../../bridges/shared/ngsi.js';

t.test('hostile attribute names (__proto__, constructor) become attributes and never touch the prototype', async (t) => {
  // as a beat gets them: parsed from a source line
  const attributes = JSON.parse('{"__proto__": {"polluted": true}, "constructor": "c", "prototype": 1, "ok": 2}') as Record<
    string,
    unknown
  >;
  for (const format of ['ngsi', 'ngsi-ld'] as const) {
    const entity = toNgsiEntity(format, { type: 'Thing', id: 'x', attributes });
    const json = JSON.parse(JSON.stringify(entity)) as Record<string, unknown>;
    t.same(
      Object.keys(json).filter((k) => k !== '@context'),
      ['id', 'type', '__proto__', 'constructor', 'prototype', 'ok'],
      `${format}: every attribute is kept`,
    );
    t.match(
      Object.getOwnPropertyDescriptor(json, '__proto__')?.value,
      { value: { polluted: true } },
      `${format}: __proto__ carries its value`,
    );
    t.equal(Object.getPrototypeOf(entity), Object.prototype, `${format}: the entity's prototype is untouched`);
    t.equal((entity as { polluted?: unknown }).polluted, undefined);
  }
  t.equal(({} as { polluted?: unknown }).polluted, undefined, 'Object.prototype is not polluted');
  t.equal(attributeName('__proto__'), '__proto__');
  t.equal(attributeName('id'), 'src_id', 'reserved entity names are renamed');
});
