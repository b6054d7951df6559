/** One entity of a notification, in the format the context broker sent it. */
export interface NotifiedEntity {
  /** Absent in the NGSI v2 `values` format, which sends attribute values only. */
  id?: string;
  type?: string;
  entity: unknown;
}

export interface Notification {
  /** Absent in the `simplifiedNormalized` / `simplifiedKeyValues` formats (the body is the bare entity). */
  subscriptionId?: string;
  /** NGSI-LD notification id (`urn:ngsi-ld:Notification:…`), used to drop a notification delivered twice. */
  id?: string;
  notifiedAt?: string;
  entities: NotifiedEntity[];
}

export class NotificationError extends Error {}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown) => (typeof v === 'string' ? v : undefined);

/** GeoJSON Features (NGSI-LD `application/geo+json` notifications): the entity type is in `properties.type`. */
function features(fc: Record<string, unknown>): NotifiedEntity[] {
  if (!Array.isArray(fc.features)) throw new NotificationError('a FeatureCollection without features');
  return fc.features.map((f, i) => {
    if (!isObject(f)) throw new NotificationError(`feature ${i} is not an object`);
    const props = isObject(f.properties) ? f.properties : {};
    return { id: str(f.id) ?? str(props.id), type: str(props.type), entity: f };
  });
}

function entityOf(e: unknown, where: string): NotifiedEntity {
  if (Array.isArray(e)) return { entity: e }; // NGSI v2 `values`: attribute values in the subscription's order
  if (!isObject(e)) throw new NotificationError(`${where} is not an entity`);
  if (e.type === 'Feature') return features({ features: [e] })[0];
  const id = str(e.id);
  const type = str(e.type);
  if (id === undefined || type === undefined) throw new NotificationError(`${where} has no string id and type`);
  return { id, type, entity: e };
}

/**
 * Reads a notification body in any format Orion and Orion-LD send: NGSI v2 `{subscriptionId, data}`
 * with normalized, keyValues or values entities; the bare entity of `simplifiedNormalized` /
 * `simplifiedKeyValues`; NGSI-LD `{id, type: "Notification", subscriptionId, notifiedAt, data}` with
 * normalized, concise or keyValues entities; GeoJSON (a FeatureCollection, bare or as `data`).
 * Throws NotificationError saying what is wrong.
 */
export function parseNotification(body: unknown): Notification {
  if (!isObject(body)) throw new NotificationError('the body is not a JSON object');
  if (body.type === 'FeatureCollection') return { entities: features(body) };
  if ('data' in body || 'subscriptionId' in body) {
    const subscriptionId = str(body.subscriptionId);
    if (subscriptionId === undefined) throw new NotificationError('subscriptionId is missing or not a string');
    const data = body.data;
    let entities: NotifiedEntity[];
    if (isObject(data) && data.type === 'FeatureCollection') entities = features(data);
    else if (Array.isArray(data)) entities = data.map((e, i) => entityOf(e, `data[${i}]`));
    else throw new NotificationError('data is not an array of entities');
    return { subscriptionId, id: body.type === 'Notification' ? str(body.id) : undefined, notifiedAt: str(body.notifiedAt), entities };
  }
  return { entities: [entityOf(body, 'the body')] };
}
