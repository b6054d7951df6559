import t, { type Test } from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { loadConfig } from '../../app/config.js';
import { startTestBroker, tempDir, type TestBroker } from '../helpers/broker.js';
import { collect, connectClient, until } from '../helpers/mqtt.js';
import { fixture } from '../helpers/paths.js';
import { SseClient } from './sse-client.js';
import { FakeOrion } from './replay/orion.js';

const text = (...p: string[]) => readFileSync(fixture(...p), 'utf8');
const json = (...p: string[]) => JSON.parse(text(...p));

/** `Name: value` lines as headers, as Orion sent them (Host and Content-Length are the client's own). */
function headerLines(lines: string[]): Record<string, string> {
  const h: Record<string, string> = {};
  for (const l of lines) {
    const m = /^([A-Za-z0-9-]+): (.*)$/.exec(l);
    if (m && !/^(host|content-length)$/i.test(m[1])) h[m[1]] = m[2];
  }
  return h;
}

/** The raw notification Orion's accumulator printed: request line, headers, blank line, body. */
function accumulatorDump(): { headers: Record<string, string>; body: string } {
  const [head, body] = text('fiware', 'ngsiv2-notification-normalized.accumulator-dump.txt').split(/\n\n/);
  return { headers: headerLines(head.split('\n').slice(1)), body };
}

const V2_HEADERS = {
  'Content-Type': 'application/json; charset=utf-8',
  Accept: 'application/json',
  'User-Agent': 'orion/3.10.1',
  'Ngsiv2-AttrsFormat': 'normalized',
};
const LD_HEADERS = {
  'Content-Type': 'application/json',
  Accept: 'application/json',
  'User-Agent': 'orionld/1.4.0',
  'NGSILD-Tenant': 'openiot',
};

async function notify(url: string, body: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { method: 'POST', headers, body });
  return { status: res.status, body: await res.text() };
}

async function metric(httpPort: number, line: string): Promise<number> {
  const body = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const m = body.split('\n').find((l) => l.startsWith(line));
  return m === undefined ? 0 : Number(m.split(' ').pop());
}

async function fiwareBroker(
  t: Test,
  orion: FakeOrion,
  lines: string[],
): Promise<{ b: TestBroker; conf: string; dir: string; sub: MqttClient; got: ReturnType<typeof collect> }> {
  const dir = tempDir();
  const conf = [
    'listener 0 127.0.0.1',
    'allow_anonymous true',
    'http_listener 0 127.0.0.1',
    `persistence_location ${dir}`,
    'beat fiware',
    `fiware_url ${orion.url}`,
    'fiware_notify_url http://127.0.0.1:1/beats/fiware/notify',
    'fiware_check_interval 200ms',
    ...lines,
    '',
  ].join('\n');
  const b = await startTestBroker(t, conf, { dir });
  const sub = await connectClient(t, b.mqttUrl);
  const got = collect(sub);
  await sub.subscribeAsync('beats/fiware/#', { qos: 1 });
  return { b, conf, dir, sub, got };
}

/** The notification URL the beat gave Orion, pointed at the broker's real HTTP port (the config names a placeholder port). */
const target = (orion: FakeOrion, id: string, b: TestBroker) => orion.notifyUrl(id).replace('127.0.0.1:1/', `127.0.0.1:${b.httpPort}/`);
const payloads = (got: { topic: string; payload: Buffer }[]) => got.map((m) => ({ topic: m.topic, ...JSON.parse(m.payload.toString()) }));

t.test('config errors name file, line and key', async (t) => {
  const dir = tempDir();
  const base = 'beat fiware\nfiware_url http://orion:1026\nfiware_notify_url http://m:8080/beats/fiware/notify\n';
  const cases: [string, RegExp][] = [
    ['beat fiware\nfiware_notify_url http://m/beats/fiware/notify\nfiware_subscribe Room\n', /fiware_url: beat fiware needs fiware_url/],
    ['beat fiware\nfiware_url http://orion:1026\nfiware_subscribe Room\n', /fiware_notify_url: beat fiware needs fiware_notify_url/],
    [base, /fiware_subscribe: beat fiware needs at least one fiware_subscribe/],
    [
      'beat fiware\nfiware_url http://orion:1026\nfiware_notify_url http://m:8080/notifications\n',
      /:4: fiware_notify_url: the notification URL must end in \/fiware\/notify/,
    ],
    [`${base}fiware_subscribe Room\nfiware_api v3\n`, /:6: fiware_api: expected one of v2\|ld/],
    [`${base}fiware_subscribe Room\nfiware_service Bad-Tenant\n`, /:6: fiware_service: expected a tenant of 1-50 lowercase/],
    [`${base}fiware_subscribe Room\nfiware_servicepath floor1\n`, /:6: fiware_servicepath: expected a service path/],
    [`${base}fiware_subscribe Room temp,hum(id)\n`, /:5: fiware_subscribe: "hum\(id\)" is not a valid attribute name/],
    [`${base}fiware_subscribe Room\nfiware_api ld\nfiware_servicepath /a\n`, /fiware_servicepath: NGSI-LD has no service paths/],
  ];
  for (const [body, want] of cases) {
    const file = join(dir, 'm.conf');
    writeFileSync(file, `listener 0 127.0.0.1\n${body}`);
    t.throws(() => loadConfig(file), want, body.replace(/\n/g, ' | '));
  }
});

t.test(
  'replayed wire format (Orion NGSI v2): subscription calls as Orion documents them, every notification format once on MQTT and SSE, foreign and hostile ones refused, forgotten subscriptions re-created, deleted at shutdown',
  async (t) => {
    const orion = new FakeOrion(t, ['12345', '57458eb60962ef754e7c0998']);
    await orion.start();
    const { b, got } = await fiwareBroker(t, orion, ['fiware_subscribe Room temperature,humidity']);
    const sse = new SseClient(t, `http://127.0.0.1:${b.httpPort}/sse?topic=beats/fiware/%23`);
    await sse.open();

    const create = orion.requests[0];
    t.equal(create.method, 'POST');
    t.equal(create.path, '/v2/subscriptions');
    t.equal(create.headers['content-type'], 'application/json');
    t.notOk(create.headers['fiware-service'], 'default tenant: no Fiware-Service header');
    const url = create.body.notification.http.url as string;
    t.match(
      url,
      /^http:\/\/127\.0\.0\.1:1\/beats\/fiware\/notify\?s=[A-Za-z0-9_-]{16}$/,
      "notification URL with the beat's subscription key",
    );
    t.same(
      create.body,
      {
        description: 'mqprobe beat fiware: Room',
        subject: { entities: [{ idPattern: '.*', type: 'Room' }], condition: { attrs: ['temperature', 'humidity'] } },
        notification: { http: { url }, attrsFormat: 'normalized', attrs: ['temperature', 'humidity'] },
      },
      'the subscription body of orion-api.md',
    );

    const to = target(orion, '12345', b);
    const normalized = text('fiware', 'ngsiv2-notification-normalized.json');
    t.equal((await notify(to, normalized, V2_HEADERS)).status, 200, 'normalized accepted');
    t.equal(
      (await notify(to, text('fiware', 'ngsiv2-notification-keyValues.json'), { ...V2_HEADERS, 'Ngsiv2-AttrsFormat': 'keyValues' })).status,
      200,
      'keyValues accepted',
    );
    t.equal(
      (
        await notify(to, text('fiware', 'ngsiv2-notification-simplifiedNormalized.json'), {
          ...V2_HEADERS,
          'Ngsiv2-AttrsFormat': 'simplifiedNormalized',
        })
      ).status,
      200,
      'simplifiedNormalized accepted',
    );
    t.equal(
      (await notify(to, JSON.stringify({ subscriptionId: '12345', data: [[23, 70]] }), { ...V2_HEADERS, 'Ngsiv2-AttrsFormat': 'values' }))
        .status,
      200,
      'values accepted',
    );

    // hostile and foreign notifications: refused, counted, nothing published
    const dump = accumulatorDump();
    const refusals: [string, Promise<{ status: number; body: string }>, number][] = [
      ['a subscription of someone else (the accumulator dump, id 57458eb6…)', notify(to, dump.body, dump.headers), 403],
      ['no subscription key', notify(to.replace(/\?s=.*/, ''), normalized, V2_HEADERS), 403],
      ['an unknown subscription key', notify(to.replace(/s=.*/, 's=forged'), normalized, V2_HEADERS), 403],
      ['a wrong tenant', notify(to, normalized, { ...V2_HEADERS, 'FIWARE-Service': 'othertenant' }), 400],
      ['bad JSON', notify(to, '{"subscriptionId": "12345", "data": [', V2_HEADERS), 400],
      ['JSON that is no notification', notify(to, '{"subscriptionId": "12345", "data": [{"id": 5}]}', V2_HEADERS), 400],
      [
        'JSON nested 200,000 levels deep (refused before parsing)',
        notify(to, `{"subscriptionId":"12345","data":${'['.repeat(200_000)}${']'.repeat(200_000)}}`, V2_HEADERS),
        400,
      ],
      [
        'a 50 MB body',
        notify(to, `{"subscriptionId":"12345","data":[{"id":"x","type":"Room","junk":"${'x'.repeat(50 * 1024 * 1024)}"}]}`, V2_HEADERS),
        413,
      ],
    ];
    for (const [what, answer, status] of refusals) t.equal((await answer).status, status, `${what}: HTTP ${status}`);

    await until(() => got.length >= 4 && sse.events.length >= 4, 10_000, '4 entities');
    const want = [
      {
        topic: 'beats/fiware/default/Room/Room1',
        service: 'default',
        servicePath: '/',
        subscriptionId: '12345',
        attrsFormat: 'normalized',
        type: 'Room',
        id: 'Room1',
        entity: JSON.parse(normalized).data[0],
      },
      {
        topic: 'beats/fiware/default/Room/Room1',
        service: 'default',
        servicePath: '/',
        subscriptionId: '12345',
        attrsFormat: 'keyValues',
        type: 'Room',
        id: 'Room1',
        entity: { id: 'Room1', type: 'Room', temperature: 23, humidity: 70 },
      },
      {
        topic: 'beats/fiware/default/Room/Room1',
        service: 'default',
        servicePath: '/',
        subscriptionId: '12345',
        attrsFormat: 'simplifiedNormalized',
        type: 'Room',
        id: 'Room1',
        entity: json('fiware', 'ngsiv2-notification-simplifiedNormalized.json'),
      },
      {
        topic: 'beats/fiware/default/Room/_',
        service: 'default',
        servicePath: '/',
        subscriptionId: '12345',
        attrsFormat: 'values',
        type: 'Room',
        entity: [23, 70],
      },
    ];
    t.same(payloads(got), want, 'each notified entity once on beats/fiware/<service>/<type>/<id>');
    t.same(
      sse.events.map((e) => ({ topic: e.event, ...JSON.parse(e.data) })),
      want,
      'and once on SSE',
    );
    const outcome = (o: string) => metric(b.httpPort!, `mqprobe_beat_fiware_notifications_total{beat="fiware",outcome="${o}"}`);
    t.equal(await outcome('accepted'), 4);
    t.equal(await outcome('foreign'), 3);
    t.equal(await outcome('wrong_tenant'), 1);
    t.equal(await outcome('malformed'), 4, 'bad JSON, not a notification, too deep, too large');

    // Orion forgets the subscription (restart without persistence): the beat re-creates it with the same key
    orion.forget('12345');
    await until(() => orion.subscriptions.has('57458eb60962ef754e7c0998'), 5000, 'the re-created subscription');
    t.equal(orion.notifyUrl('57458eb60962ef754e7c0998'), url, 'same notification URL');
    t.equal((await notify(to, dump.body, dump.headers)).status, 200, 'the accumulator dump is now for our subscription: accepted');
    t.equal((await notify(to, normalized, V2_HEADERS)).status, 403, 'the forgotten subscription id is no longer ours');
    await until(() => got.length >= 5, 5000, 'the fifth entity');
    t.same(payloads(got)[4].entity, JSON.parse(dump.body).data[0]);
    t.equal(got.length, 5, 'nothing else published');

    await b.broker.close();
    const last = orion.requests[orion.requests.length - 1];
    t.same([last.method, last.path], ['DELETE', '/v2/subscriptions/57458eb60962ef754e7c0998'], 'the subscription is deleted at shutdown');
    t.equal(orion.subscriptions.size, 0, 'nothing left in Orion');
  },
);

t.test('replayed wire format (Orion NGSI v2, Cygnus fixture): tenant and service path headers, read by name', async (t) => {
  const orion = new FakeOrion(t, ['51c0ac9ed714fb3b37d7d5a1']);
  await orion.start();
  const { b, got } = await fiwareBroker(t, orion, ['fiware_service default', 'fiware_servicepath /', 'fiware_subscribe Room']);
  t.equal(orion.requests[0].headers['fiware-service'], 'default');
  t.equal(orion.requests[0].headers['fiware-servicepath'], '/');
  t.same(orion.requests[0].body.subject, { entities: [{ idPattern: '.*', type: 'Room' }], condition: {} }, 'no attribute list: any change');
  const headers = headerLines(text('fiware', 'ngsiv2-notification-cygnus-simple.headers.txt').split('\n'));
  const to = target(orion, '51c0ac9ed714fb3b37d7d5a1', b);
  const body = text('fiware', 'ngsiv2-notification-cygnus-simple.body.json');
  t.equal((await notify(to, body, headers)).status, 200, 'accepted');
  t.equal((await notify(to, body, { ...headers, 'Fiware-ServicePath': '/elsewhere' })).status, 400, 'another service path refused');
  await until(() => got.length >= 1, 5000, 'the entity');
  t.same(payloads(got), [
    {
      topic: 'beats/fiware/default/Room/Room1',
      service: 'default',
      servicePath: '/',
      subscriptionId: '51c0ac9ed714fb3b37d7d5a1',
      attrsFormat: 'normalized',
      type: 'Room',
      id: 'Room1',
      entity: JSON.parse(body).data[0],
    },
  ]);
});

t.test(
  'replayed wire format (Orion-LD NGSI-LD): subscriptions, normalized/concise/keyValues/GeoJSON notifications, tenant, duplicates, restart',
  async (t) => {
    const ids = [
      'urn:ngsi-ld:Subscription:5fd0ee554eb81930c97005c1',
      'urn:ngsi-ld:Subscription:5fd0f69b4eb81930c97005db',
      'urn:ngsi-ld:Subscription:6220b4a964f3729a8527f88c',
    ];
    const orion = new FakeOrion(t, [...ids]);
    await orion.start();
    const lines = [
      'fiware_api ld',
      'fiware_service openiot',
      'fiware_subscribe FillingLevelSensor filling',
      'fiware_subscribe FillingLevelSensor',
      'fiware_subscribe Animal heartRate,location',
    ];
    const { b, conf, dir, got } = await fiwareBroker(t, orion, lines);
    const create = orion.requests[0];
    t.same(
      [create.method, create.path, create.headers['content-type'], create.headers['ngsild-tenant']],
      ['POST', '/ngsi-ld/v1/subscriptions', 'application/ld+json', 'openiot'],
    );
    t.same(
      create.body,
      {
        type: 'Subscription',
        description: 'mqprobe beat fiware: FillingLevelSensor',
        entities: [{ type: 'FillingLevelSensor' }],
        watchedAttributes: ['filling'],
        notification: {
          format: 'normalized',
          endpoint: { uri: create.body.notification.endpoint.uri, accept: 'application/json' },
          attributes: ['filling'],
        },
        '@context': 'https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld',
      },
      'the NGSI-LD subscription body',
    );

    const keyValues = text('fiware', 'ngsild-notification-keyValues.json');
    const normalized = text('fiware', 'ngsild-notification-normalized.json');
    const concise = text('fiware', 'ngsild-notification-concise.json');
    t.equal((await notify(target(orion, ids[0], b), keyValues, LD_HEADERS)).status, 200);
    t.equal(
      (
        await notify(target(orion, ids[1], b), normalized, {
          ...Object.fromEntries(Object.entries(LD_HEADERS).filter(([k]) => k !== 'NGSILD-Tenant')),
          'ngsild-tenant': 'openiot',
        })
      ).status,
      200,
      'tenant header in lower case',
    );
    t.equal((await notify(target(orion, ids[2], b), concise, LD_HEADERS)).status, 200);
    t.equal((await notify(target(orion, ids[2], b), concise, LD_HEADERS)).status, 200, 'the same notification again: answered');
    t.equal(
      (await notify(target(orion, ids[0], b), normalized, LD_HEADERS)).status,
      403,
      'a notification of another subscription on this key',
    );
    t.equal((await notify(target(orion, ids[0], b), keyValues, { ...LD_HEADERS, 'NGSILD-Tenant': 'other' })).status, 400, 'wrong tenant');
    // GeoJSON (Accept: application/geo+json subscriptions): the concise fixture's entity as an NGSI-LD GeoJSON Feature
    const animal = JSON.parse(concise).data[0];
    const { id: animalId, type: animalType, location, ...props } = animal;
    const feature = { id: animalId, type: 'Feature', geometry: location.value, properties: { type: animalType, ...props, location } };
    const geo = JSON.stringify({
      id: 'urn:ngsi-ld:Notification:geo1',
      type: 'Notification',
      subscriptionId: ids[2],
      notifiedAt: '2022-03-03T12:30:29.000Z',
      data: { type: 'FeatureCollection', features: [feature] },
    });
    t.equal(
      (await notify(target(orion, ids[2], b), geo, { ...LD_HEADERS, 'Content-Type': 'application/geo+json' })).status,
      200,
      'GeoJSON accepted',
    );

    await until(() => got.length >= 4, 5000, '4 entities');
    const p = payloads(got);
    t.same(
      p.map((m) => m.topic),
      [
        'beats/fiware/openiot/FillingLevelSensor/urn:ngsi-ld:Device:filling001',
        'beats/fiware/openiot/FillingLevelSensor/urn:ngsi-ld:Device:filling001',
        'beats/fiware/openiot/Animal/urn:ngsi-ld:Animal:pig003',
        'beats/fiware/openiot/Animal/urn:ngsi-ld:Animal:pig003',
      ],
      'one message per entity, the duplicate dropped',
    );
    t.same(p[1].entity, JSON.parse(normalized).data[0], 'the normalized entity as sent');
    t.same([p[2].notifiedAt, p[2].subscriptionId], ['2022-03-03T12:30:28.237Z', ids[2]]);
    t.same(p[3].entity, feature, 'the GeoJSON feature');
    t.equal(await metric(b.httpPort!, 'mqprobe_beat_fiware_notifications_total{beat="fiware",outcome="duplicate"}'), 1);

    // broker restart: subscriptions deleted, new ones created; a notification to the old key is foreign now
    const before = orion.notifyUrl(ids[0]);
    await b.broker.close();
    t.same(
      orion.requests.filter((r) => r.method === 'DELETE').map((r) => decodeURIComponent(r.path.split('/').pop()!)),
      ids,
      'all three deleted at shutdown',
    );
    const orion2Ids = ['urn:ngsi-ld:Subscription:r1', 'urn:ngsi-ld:Subscription:r2', 'urn:ngsi-ld:Subscription:r3'];
    orion.ids.push(...orion2Ids);
    const b2 = await startTestBroker(t, conf, { dir });
    t.same([...orion.subscriptions.keys()], orion2Ids, 'three new subscriptions after the restart');
    const old = before.replace('127.0.0.1:1/', `127.0.0.1:${b2.httpPort}/`);
    t.equal((await notify(old, keyValues, LD_HEADERS)).status, 403, 'the old subscription key is not accepted');
    await b2.broker.close();
    t.equal(orion.subscriptions.size, 0, 'nothing left in Orion-LD');
  },
);

t.test(
  'replayed wire format (Orion NGSI v2): subscriptions a crashed run left are deleted at start; an unreachable Orion is a clear error, retried',
  async (t) => {
    const orion = new FakeOrion(t, ['left-by-crash', 'new-1']);
    await orion.start();
    // a run that crashed: its subscription is still in Orion and in the beat's state file
    orion.subscriptions.set('left-by-crash', {});
    orion.ids.shift();
    const dir = tempDir();
    writeFileSync(join(dir, 'mqprobe-beat-fiware.json'), JSON.stringify({ subscriptions: JSON.stringify(['left-by-crash']) }));
    const conf = [
      'listener 0 127.0.0.1',
      'allow_anonymous true',
      'http_listener 0 127.0.0.1',
      `persistence_location ${dir}`,
      'beat fiware',
      `fiware_url ${orion.url}`,
      'fiware_notify_url http://127.0.0.1:1/beats/fiware/notify',
      'fiware_subscribe Room',
      '',
    ].join('\n');
    const b = await startTestBroker(t, conf, { dir });
    t.same(
      orion.requests.slice(0, 2).map((r) => `${r.method} ${r.path}`),
      ['DELETE /v2/subscriptions/left-by-crash', 'POST /v2/subscriptions'],
      'the leftover deleted before subscribing anew',
    );
    t.same([...orion.subscriptions.keys()], ['new-1']);
    await b.broker.close();

    await orion.stop();
    const b2 = await startTestBroker(t, conf, { dir });
    const log = () => readFileSync(b2.logFile, 'utf8');
    await until(() => log().includes('beat fiware failed'), 10_000, 'the failure');
    t.match(log(), /beat fiware failed: cannot reach the context broker at http:\/\/127\.0\.0\.1:\d+: .*; restarting in 1000 ms/);
    t.equal(
      (
        await fetch(`http://127.0.0.1:${b2.httpPort}/beats/fiware/notify?s=x`, {
          method: 'POST',
          body: '{}',
          headers: { 'content-type': 'application/json' },
        })
      ).status,
      404,
      'no notification route while the beat waits to restart',
    );
  },
);

t.test(
  'replayed wire format (Orion NGSI v2): with allow_anonymous false the subscription carries fiware_notify_token_file as httpCustom headers; notifications without it are refused',
  async (t) => {
    const orion = new FakeOrion(t, ['12345']);
    await orion.start();
    const dir = tempDir();
    const token = 'orion-notify-token-7c2e9a41';
    writeFileSync(join(dir, 'tokens'), `orion:${token}\n`);
    writeFileSync(join(dir, 'notify-token'), `${token}\n`);
    writeFileSync(join(dir, 'acl'), 'user orion\ntopic write beats/fiware/#\n');
    const conf = [
      'listener 0 127.0.0.1',
      'allow_anonymous false',
      `acl_file ${join(dir, 'acl')}`,
      'http_listener 0 127.0.0.1',
      `http_token_file ${join(dir, 'tokens')}`,
      `persistence_location ${dir}`,
      'beat fiware',
      `fiware_url ${orion.url}`,
      'fiware_notify_url http://127.0.0.1:1/beats/fiware/notify',
      `fiware_notify_token_file ${join(dir, 'notify-token')}`,
      'fiware_subscribe Room',
      '',
    ].join('\n');
    const b = await startTestBroker(t, conf, { dir });
    await until(() => orion.requests.length >= 1);
    const notification = orion.requests[0].body.notification;
    t.same(notification.httpCustom.headers, { Authorization: `Bearer ${token}` }, 'Orion sends the token with each notification');
    t.notOk(notification.http, 'no plain http target');
    const to = target(orion, '12345', b);
    const normalized = text('fiware', 'ngsiv2-notification-normalized.json');
    t.equal((await notify(to, normalized, V2_HEADERS)).status, 401, 'without the token: refused');
    t.equal((await notify(to, normalized, { ...V2_HEADERS, Authorization: `Bearer ${token}` })).status, 200, 'as Orion sends it: accepted');
    t.notOk(readFileSync(b.logFile, 'utf8').includes(token), 'the token is not logged');
  },
);
