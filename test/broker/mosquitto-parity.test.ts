import t from 'tap';
import { brokerKeyTable } from '../../broker/config/load.js';
import { MOSQUITTO_PARITY, withMosquittoParity } from '../../broker/config/mosquitto-parity.js';

/** docs/configuration.md's Mosquitto column: every Mosquitto key says how it compares, and the table names no key that does not exist. */
t.test('every Mosquitto key has its Mosquitto column, and the column names only real keys', async (t) => {
  const mosquitto = brokerKeyTable.find((a) => a.area === 'Mosquitto');
  t.ok(mosquitto, 'the Mosquitto key table');
  const missing = withMosquittoParity(mosquitto!.specs)
    .filter((s) => s.mosquitto === undefined)
    .map((s) => s.key);
  t.same(missing, [], 'no Mosquitto key without same / differs / not supported');
  const known = new Set(brokerKeyTable.flatMap((a) => a.specs.map((s) => s.key)));
  t.same(
    Object.keys(MOSQUITTO_PARITY).filter((k) => !known.has(k)),
    [],
    'no entry for a key that does not exist',
  );
});
