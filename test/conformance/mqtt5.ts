/**
 * MQTT 5.0 (OASIS Standard, 7 March 2019): the normative statements a server must satisfy that a client
 * can observe. Where MQTT 5 keeps a 3.1.1 rule under another number, the 3.1.1 row's probe runs again
 * as an MQTT 5 client (its packets carry property lists then); the rest are MQTT 5's own.
 */
import type { Statement, Suite, Target, Untestable } from './statements.js';
import { mqtt311 } from './mqtt311.js';
import {
  closedAfter,
  closes,
  code,
  keep,
  packet,
  pause,
  publish,
  publishAcked,
  publishes,
  sendConnect,
  leave,
  sent,
  refusal,
  str,
  subscribe,
  texts,
} from './wire-probes.js';

/** The 3.1.1 row whose ids start with `id` (and whose text starts with `says`), under its MQTT 5 ids. */
function as5(id: string, ids: string[], says?: string): Statement {
  const row = mqtt311.statements.find((s) => s.ids[0] === id && (!says || s.says.startsWith(says)));
  if (!row) throw new Error(`no 3.1.1 row ${id}`);
  return { ...row, ids };
}

/** A publisher and a subscriber of `topic` (granted as asked), for the pass-through rows. */
async function pubSub(b: Target, what: string, sub: Record<string, unknown> = {}, subProps?: Record<string, unknown>) {
  const topic = `conf/${b.id(what)}`;
  const s = await b.connect();
  await subscribe(s, [{ topic, qos: 1, ...sub }], subProps);
  return { topic, s, p: await b.connect() };
}

const reused: Statement[] = [
  as5('MQTT-3.1.0-1', ['MQTT-3.1.0-1']),
  as5('MQTT-3.1.0-2', ['MQTT-3.1.0-2']),
  as5('MQTT-3.1.2-1', ['MQTT-3.1.2-1']),
  as5('MQTT-3.1.2-3', ['MQTT-3.1.2-3', 'MQTT-3.1.4-1']),
  as5('MQTT-3.1.2-4', ['MQTT-3.1.2-5', 'MQTT-3.1.2-23', 'MQTT-3.2.2-3', 'MQTT-4.5.0-1']),
  as5('MQTT-3.1.2-6', ['MQTT-3.1.2-4', 'MQTT-3.2.2-2']),
  as5('MQTT-3.2.2-3', ['MQTT-3.1.2-6', 'MQTT-3.2.2-3']),
  as5('MQTT-3.1.2-8', ['MQTT-3.1.2-7', 'MQTT-3.1.2-8', 'MQTT-3.1.2-14']),
  as5('MQTT-3.1.2-17', ['MQTT-3.1.2-15']),
  as5('MQTT-3.1.2-10', ['MQTT-3.1.2-10', 'MQTT-3.14.4-3']),
  as5('MQTT-3.1.2-11', ['MQTT-3.1.2-11']),
  as5('MQTT-3.1.2-14', ['MQTT-3.1.2-12']),
  as5('MQTT-3.1.2-15', ['MQTT-3.1.2-13']),
  as5('MQTT-3.1.2-24', ['MQTT-3.1.2-22', 'MQTT-3.2.2-22']),
  as5('MQTT-3.1.3-5', ['MQTT-3.1.3-5']),
  as5('MQTT-3.1.4-2', ['MQTT-3.1.4-2']),
  as5('MQTT-3.2.0-1', ['MQTT-3.2.0-1', 'MQTT-3.2.0-2']),
  as5('MQTT-3.3.1-1', ['MQTT-3.3.1-1', 'MQTT-4.4.0-1']),
  as5('MQTT-3.3.1-2', ['MQTT-3.3.1-2', 'MQTT-3.3.1-3', 'MQTT-4.3.1-1']),
  as5('MQTT-3.3.1-4', ['MQTT-3.3.1-4']),
  as5('MQTT-3.3.1-5', ['MQTT-3.3.1-5', 'MQTT-3.3.1-9']),
  as5('MQTT-3.3.1-7', ['MQTT-3.3.1-5']),
  as5('MQTT-3.3.1-9', ['MQTT-3.3.1-12']),
  as5('MQTT-3.3.1-10', ['MQTT-3.3.1-6', 'MQTT-3.3.1-7']),
  as5('MQTT-3.3.1-12', ['MQTT-3.3.1-8']),
  as5('MQTT-3.3.2-2', ['MQTT-3.3.2-2', 'MQTT-4.7.0-1']),
  as5('MQTT-3.3.2-3', ['MQTT-3.3.2-3']),
  as5('MQTT-3.3.4-1', ['MQTT-3.3.4-1', 'MQTT-2.2.1-5', 'MQTT-4.3.2-4', 'MQTT-4.3.3-8', 'MQTT-4.3.3-11']),
  as5('MQTT-4.3.3-2', ['MQTT-4.3.3-10', 'MQTT-4.3.3-12']),
  as5('MQTT-4.3.2-2', ['MQTT-4.3.2-5']),
  as5('MQTT-2.3.1-1', ['MQTT-2.2.1-4']),
  as5('MQTT-3.6.1-1', ['MQTT-3.6.1-1']),
  as5('MQTT-3.8.1-1', ['MQTT-3.8.1-1']),
  as5('MQTT-3.8.3-3', ['MQTT-3.8.3-2']),
  as5('MQTT-3.8.3-4', ['MQTT-3.8.3-5']),
  as5('MQTT-3.8.4-1', ['MQTT-3.8.4-1', 'MQTT-3.8.4-2', 'MQTT-3.8.4-5', 'MQTT-3.8.4-6', 'MQTT-3.8.4-7', 'MQTT-3.9.3-1', 'MQTT-3.9.3-2']),
  as5('MQTT-3.8.4-3', ['MQTT-3.8.4-3', 'MQTT-3.8.4-4']),
  as5('MQTT-3.8.4-6', ['MQTT-3.8.4-8']),
  as5('MQTT-3.3.5-1', ['MQTT-3.3.4-2']),
  as5('MQTT-3.10.1-1', ['MQTT-3.10.1-1']),
  as5('MQTT-3.10.3-2', ['MQTT-3.10.3-2']),
  as5('MQTT-3.10.4-1', ['MQTT-3.10.4-1', 'MQTT-3.10.4-2', 'MQTT-3.10.4-4', 'MQTT-3.10.4-5', 'MQTT-3.10.4-6']),
  as5('MQTT-3.12.4-1', ['MQTT-3.12.4-1']),
  as5('MQTT-3.14.1-1', ['MQTT-3.14.1-1']),
  as5('MQTT-4.6.0-5', ['MQTT-4.6.0-5', 'MQTT-4.6.0-6']),
  as5('MQTT-4.7.1-2', ['MQTT-4.7.1-1', 'MQTT-4.7.1-2'], '"#"'),
  as5('MQTT-4.7.1-2', ['MQTT-4.7.1-1', 'MQTT-4.7.1-2'], 'wildcard matching'),
  as5('MQTT-4.7.2-1', ['MQTT-4.7.2-1']),
  as5('MQTT-4.7.3-1', ['MQTT-4.7.3-1']),
  as5('MQTT-4.7.3-2', ['MQTT-4.7.3-2', 'MQTT-1.5.4-2']),
  as5('MQTT-1.5.3-1', ['MQTT-1.5.4-1']),
  as5('MQTT-1.5.3-3', ['MQTT-1.5.4-3', 'MQTT-4.7.3-4']),
];

const own: Statement[] = [
  {
    ids: ['MQTT-3.1.2-2'],
    says: 'a protocol version the server does not accept: not accepted, and the connection is closed',
    probe: async (b) => {
      const c = await sendConnect(b, { level: 6, flags: 0x02, clientId: b.id('v6'), rest: [[0]] });
      return { closed: await closes(c), accepted: sent(c, 'connack', 0) };
    },
    spec: { closed: true, accepted: false },
  },
  {
    ids: ['MQTT-3.14.0-1', 'MQTT-4.13.1-1'],
    says: 'a malformed CONNECT is closed, and no DISCONNECT comes before a successful CONNACK',
    probe: async (b) => {
      const c = await sendConnect(b, { level: 5, flags: 0x03, clientId: b.id('bad') });
      return { closed: await closes(c), disconnect: sent(c, 'disconnect') };
    },
    spec: { closed: true, disconnect: false },
  },
  {
    ids: ['MQTT-2.2.2-2'],
    says: 'a property other than User Property given twice is a protocol error: the CONNECT is not accepted',
    probe: async (b) => {
      const c = await b.open();
      // Session Expiry Interval (0x11) twice
      const twice = [10, 0x11, 0, 0, 0, 5, 0x11, 0, 0, 0, 6];
      c.raw(packet(0x10, str('MQTT'), [5, 0x02, 0, 30], twice, str(b.id('twice'))));
      return refusal(c);
    },
    spec: { accepted: false, closed: true },
  },
  {
    ids: ['MQTT-1.5.5-1'],
    says: 'a variable byte integer of five bytes is malformed: closed',
    probe: (b) => closedAfter(b, Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])),
    spec: { closed: true },
  },
  {
    ids: ['MQTT-4.1.0-2'],
    says: 'the session is discarded once the connection is closed and the Session Expiry Interval has passed',
    probe: async (b) => {
      const zero = b.id('exp0');
      const one = b.id('exp1');
      const a = await b.connect({ clientId: zero, clean: false });
      const c = await b.connect({ clientId: one, clean: false, properties: { sessionExpiryInterval: 1 } });
      a.send({ cmd: 'disconnect' });
      c.send({ cmd: 'disconnect' });
      await Promise.all([closes(a), closes(c)]);
      await pause(2500);
      const again = await Promise.all([zero, one].map((clientId) => b.attempt({ clientId, clean: false })));
      return { sessionPresent: again.map((r) => r.connack?.sessionPresent) };
    },
    spec: { sessionPresent: [false, false] },
  },
  {
    ids: ['MQTT-3.1.2-8', 'MQTT-3.1.3-9'],
    says: 'Will Delay Interval: the will waits for it, and is not sent when the client reconnects in time',
    probe: async (b) => {
      const topic = `conf/${b.id('delay')}`;
      const watcher = await b.connect();
      await subscribe(watcher, [{ topic, qos: 0 }]);
      const willed = (id: string, payload: string) =>
        b.connect({
          clientId: b.id(id),
          ...keep(b),
          will: { topic, payload: Buffer.from(payload), qos: 0, retain: false, properties: { willDelayInterval: 1 } },
        });
      const late = await willed('late', 'delayed');
      const back = await willed('back', 'cancelled');
      late.end();
      back.end();
      const dropped = Date.now();
      await b.connect({ clientId: b.id('back'), ...keep(b) });
      const got = await publishes(watcher, 2, 3500);
      return { delivered: texts(got), waited: Date.now() - dropped >= 900 };
    },
    spec: { delivered: ['delayed'], waited: true },
  },
  {
    ids: ['MQTT-3.1.2-10'],
    says: 'DISCONNECT 0x04 (with will message) publishes the will; 0x00 removes it',
    probe: async (b) => {
      const topic = `conf/${b.id('dw')}`;
      const watcher = await b.connect();
      await subscribe(watcher, [{ topic, qos: 0 }]);
      for (const reasonCode of [0x04, 0x00]) {
        const c = await b.connect({ will: { topic, payload: Buffer.from(`rc${reasonCode}`), qos: 0, retain: false } });
        c.send({ cmd: 'disconnect', reasonCode });
        await closes(c);
      }
      return { delivered: texts(await publishes(watcher, 2, 1000)) };
    },
    spec: { delivered: ['rc4'] },
  },
  {
    ids: ['MQTT-3.1.3-6', 'MQTT-3.1.3-7', 'MQTT-3.2.2-16'],
    says: 'an empty client id gets an Assigned Client Identifier in CONNACK, a new one each time',
    probe: async (b) => {
      const ids = [];
      for (let i = 0; i < 2; i++) ids.push((await b.attempt({ clientId: '' })).connack?.properties?.assignedClientIdentifier);
      return { assigned: ids.every((id) => typeof id === 'string' && id.length > 0), distinct: ids[0] !== ids[1] };
    },
    spec: { assigned: true, distinct: true },
  },
  {
    ids: ['MQTT-3.1.4-3'],
    says: 'a CONNECT with the client id of a connected client: the existing one gets DISCONNECT 0x8E and is closed',
    probe: async (b) => {
      const id = b.id('taken');
      const old = await b.connect({ clientId: id });
      await b.connect({ clientId: id });
      const closed = await closes(old);
      return { closed, disconnect: code(old.received.find((p) => p.cmd === 'disconnect')) };
    },
    spec: { closed: true, disconnect: 0x8e },
    mosquitto: {
      answers: { closed: true, disconnect: undefined },
      why: 'closes the old connection without a DISCONNECT (the close is the MUST; the DISCONNECT is what the statement describes)',
    },
  },
  {
    ids: ['MQTT-4.12.0-1', 'MQTT-3.1.4-6', 'MQTT-3.2.2-6', 'MQTT-3.2.2-7'],
    says: 'an Authentication Method the server does not support: CONNACK 0x8C or 0x87 with session present 0, closed, nothing after the CONNECT processed',
    probe: async (b) => {
      const topic = `conf/${b.id('auth')}`;
      const c = await b.open();
      c.send({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 5,
        clean: true,
        keepalive: 30,
        clientId: b.id('am'),
        properties: { authenticationMethod: 'SCRAM-SHA-1' },
      });
      c.send({ cmd: 'publish', topic, payload: 'must not be stored', qos: 0, retain: true });
      const connack = await c.next('connack', 3000);
      const closed = await closes(c);
      const later = await b.connect();
      await subscribe(later, [{ topic, qos: 0 }]);
      return {
        refused: [0x8c, 0x87].includes(code(connack) ?? 0),
        sessionPresent: connack?.sessionPresent,
        closed,
        stored: texts(await publishes(later, 1, 500)),
      };
    },
    spec: { refused: true, sessionPresent: false, closed: true, stored: [] },
  },
  {
    ids: ['MQTT-4.12.0-6', 'MQTT-3.1.2-28'],
    says: 'without Authentication Method no AUTH and no method in CONNACK; without Request Response Information no Response Information (nor a Server Reference)',
    probe: async (b) => {
      const { c, connack } = await b.attempt();
      c.raw(packet(0xc0));
      await c.next('pingresp', 3000);
      const p = connack?.properties ?? {};
      return {
        auth: c.received.filter((x) => x.cmd === 'auth').length,
        keys: ['authenticationMethod', 'responseInformation', 'serverReference'].filter((k) => k in p),
      };
    },
    spec: { auth: 0, keys: [] },
  },
  {
    ids: ['MQTT-4.12.0-7'],
    says: 'AUTH from a client that gave no Authentication Method is a protocol error: closed',
    probe: (b) => closedAfter(b, packet(0xf0, [0x18, 0])),
    spec: { closed: true },
  },
  {
    ids: ['MQTT-3.1.2-24', 'MQTT-3.1.2-25'],
    says: "no packet above the client's Maximum Packet Size: a larger message is dropped for it, the next one still sent",
    probe: async (b) => {
      const topic = `conf/${b.id('max')}`;
      const s = await b.connect({ properties: { maximumPacketSize: 128 } });
      await subscribe(s, [{ topic, qos: 1 }]);
      const p = await b.connect();
      await publishAcked(p, topic, 'x'.repeat(300));
      await publishAcked(p, topic, 'small');
      const got = await publishes(s, 2, 1000);
      return { delivered: texts(got) };
    },
    spec: { delivered: ['small'] },
  },
  {
    ids: ['MQTT-3.1.2-26', 'MQTT-3.1.2-27', 'MQTT-3.3.2-11'],
    says: 'no Topic Alias to a client that allows none, none above the maximum it allows',
    probe: async (b) => {
      const topic = `conf/${b.id('alias')}`;
      const none = await b.connect();
      const two = await b.connect({ properties: { topicAliasMaximum: 2 } });
      for (const s of [none, two]) await subscribe(s, [{ topic, qos: 0 }]);
      const p = await b.connect();
      for (let i = 0; i < 3; i++) await publishAcked(p, topic, String(i));
      const aliases = async (s: typeof none) => (await publishes(s, 3)).map((m) => m.properties?.topicAlias).filter((a) => a !== undefined);
      const [a0, a2] = await Promise.all([aliases(none), aliases(two)]);
      return { toNone: a0.length, aboveTwo: (a2 as number[]).filter((a) => a > 2).length };
    },
    spec: { toNone: 0, aboveTwo: 0 },
  },
  {
    ids: ['MQTT-3.1.2-29'],
    says: 'Request Problem Information 0: no Reason String or User Property on PUBACK, SUBACK or UNSUBACK',
    probe: async (b) => {
      const c = await b.connect({ properties: { requestProblemInformation: false } });
      publish(c, '$SYS/conformance', 'x', { qos: 1 });
      const acks = [await c.next('puback', 3000)];
      c.send({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: `conf/${b.id('rpi')}`, qos: 0 }] });
      acks.push(await c.next('suback', 3000));
      c.send({ cmd: 'unsubscribe', messageId: 4, unsubscriptions: ['conf/never'] });
      acks.push(await c.next('unsuback', 3000));
      return {
        withProblem: acks.filter((a) => a?.properties?.reasonString !== undefined || a?.properties?.userProperties !== undefined).length,
      };
    },
    spec: { withProblem: 0 },
  },
  {
    ids: ['MQTT-3.3.1-10', 'MQTT-3.3.1-11'],
    says: 'Retain Handling 1: retained messages only for a new subscription; 2: never on subscribe',
    probe: async (b) => {
      const base = `conf/${b.id('rh')}`;
      await publishAcked(await b.connect(), `${base}/x`, 'kept', { retain: true });
      const s = await b.connect();
      const sent: Record<string, number[]> = {};
      for (const [name, rh] of [
        ['rh1-new', 1],
        ['rh1-again', 1],
        ['rh2', 2],
      ] as const) {
        await subscribe(s, [{ topic: rh === 2 ? `${base}/+` : `${base}/#`, qos: 0, rh }]);
        sent[name] = [(await publishes(s, 2, 500)).length];
      }
      return sent;
    },
    spec: { 'rh1-new': [1], 'rh1-again': [0], rh2: [0] },
  },
  {
    ids: ['MQTT-3.3.1-13'],
    says: 'Retain As Published 1: a forwarded message keeps the RETAIN flag it was published with',
    probe: async (b) => {
      const { topic, s, p } = await pubSub(b, 'rap', { rap: true });
      await publishAcked(p, topic, 'r', { retain: true });
      await publishAcked(p, topic, 'n');
      return { retain: (await publishes(s, 2)).map((m) => m.retain) };
    },
    spec: { retain: [true, false] },
  },
  {
    ids: ['MQTT-3.3.2-4', 'MQTT-3.3.2-15', 'MQTT-3.3.2-16', 'MQTT-3.3.2-17', 'MQTT-3.3.2-18', 'MQTT-3.3.2-20', 'MQTT-3.1.3-10'],
    says: 'Payload Format Indicator, Response Topic, Correlation Data, User Properties (in order) and Content Type are forwarded unaltered',
    probe: async (b) => {
      const { topic, s, p } = await pubSub(b, 'props');
      const properties = {
        payloadFormatIndicator: true,
        responseTopic: 'conf/reply/to',
        correlationData: Buffer.from([0, 1, 255]),
        userProperties: { b: ['2', '1'], a: '3' },
        contentType: 'text/plain; charset=utf-8',
      };
      await publishAcked(p, topic, 'p', { properties });
      const got = (await publishes(s, 1))[0]?.properties ?? {};
      return {
        payloadFormatIndicator: got.payloadFormatIndicator,
        responseTopic: got.responseTopic,
        correlationData: (got.correlationData as Buffer | undefined)?.toString('hex'),
        userProperties: JSON.stringify(got.userProperties),
        contentType: got.contentType,
      };
    },
    spec: {
      payloadFormatIndicator: true,
      responseTopic: 'conf/reply/to',
      correlationData: '0001ff',
      userProperties: '{"b":["2","1"],"a":"3"}',
      contentType: 'text/plain; charset=utf-8',
    },
  },
  {
    ids: ['MQTT-3.3.2-5', 'MQTT-3.3.2-6'],
    says: 'Message Expiry: an expired message is not delivered; a delivered one carries the interval less the time it waited',
    probe: async (b) => {
      const id = b.id('expiry');
      const topic = `conf/${id}`;
      const s = await b.connect({ clientId: id, ...keep(b) });
      await subscribe(s, [{ topic, qos: 1 }]);
      await leave(s);
      const p = await b.connect();
      await publishAcked(p, topic, 'short', { properties: { messageExpiryInterval: 1 } });
      await publishAcked(p, topic, 'long', { properties: { messageExpiryInterval: 60 } });
      await pause(2200);
      const got = await publishes(await b.connect({ clientId: id, ...keep(b) }), 2);
      const left = got[0]?.properties?.messageExpiryInterval as number | undefined;
      return { delivered: texts(got), decreased: left !== undefined && left <= 58 && left > 0 };
    },
    spec: { delivered: ['long'], decreased: true },
  },
  {
    ids: ['MQTT-3.3.2-12'],
    says: 'the server accepts Topic Aliases from 1 to the Topic Alias Maximum of its CONNACK; a publish by alias reaches subscribers under its topic',
    probe: async (b) => {
      const { topic, s } = await pubSub(b, 'ta');
      const { c, connack } = await b.attempt();
      const max = (connack?.properties?.topicAliasMaximum as number | undefined) ?? 0;
      if (max === 0) return { max };
      await publishAcked(c, topic, 'set', { properties: { topicAlias: max } });
      await publishAcked(c, '', 'used', { properties: { topicAlias: max } });
      return { max: max > 0, delivered: (await publishes(s, 2)).map((m) => `${m.topic === topic}:${String(m.payload)}`) };
    },
    spec: { max: true, delivered: ['true:set', 'true:used'] },
  },
  {
    ids: ['MQTT-3.3.2-7'],
    says: 'topic alias mappings do not carry over to a new connection: using one set on the last is a protocol error',
    probe: async (b) => {
      const id = b.id('tacarry');
      const first = await b.connect({ clientId: id });
      await publishAcked(first, `conf/${id}`, 'set', { properties: { topicAlias: 1 } });
      await leave(first);
      const again = await b.connect({ clientId: id });
      publish(again, '', 'unknown alias', { qos: 1, properties: { topicAlias: 1 } });
      return { closed: await closes(again), acked: sent(again, 'puback', 0) };
    },
    spec: { closed: true, acked: false },
  },
  {
    ids: ['MQTT-3.3.2-8', 'MQTT-3.3.2-9'],
    says: 'Topic Alias 0, or one above the maximum the server allows, is a protocol error: closed',
    probe: async (b) => {
      const zero = await b.connect();
      publish(zero, `conf/${b.id('ta0')}`, 'x', { properties: { topicAlias: 0 } });
      const above = await b.attempt();
      const max = (above.connack?.properties?.topicAliasMaximum as number | undefined) ?? 0;
      publish(above.c, `conf/${b.id('taz')}`, 'x', { properties: { topicAlias: max + 1 } });
      return { zero: await closes(zero), aboveMax: await closes(above.c) };
    },
    spec: { zero: true, aboveMax: true },
  },
  {
    ids: ['MQTT-3.3.4-3', 'MQTT-3.3.4-4', 'MQTT-3.3.4-5'],
    says: 'overlapping subscriptions with Subscription Identifiers: the copies sent carry every matching identifier and no other',
    probe: async (b) => {
      const base = `conf/${b.id('si')}`;
      const s = await b.connect();
      await subscribe(s, [{ topic: `${base}/#`, qos: 0 }], { subscriptionIdentifier: 1 });
      await subscribe(s, [{ topic: `${base}/x`, qos: 1 }], { subscriptionIdentifier: 2 });
      await subscribe(s, [{ topic: `${base}/y`, qos: 1 }], { subscriptionIdentifier: 3 });
      await publishAcked(await b.connect(), `${base}/x`, 'm');
      const ids = (await publishes(s, 2, 700)).flatMap((m) => [m.properties?.subscriptionIdentifier ?? []].flat() as number[]);
      return { identifiers: [...new Set(ids)].sort() };
    },
    spec: { identifiers: [1, 2] },
    note: 'mqprobe sends one copy with both identifiers, Mosquitto a copy per subscription with its own: both allowed',
  },
  {
    ids: ['MQTT-3.3.4-9', 'MQTT-3.3.4-10', 'MQTT-4.9.0-1', 'MQTT-4.9.0-2', 'MQTT-4.9.0-3'],
    says: "no more unacknowledged QoS 1 PUBLISHes than the client's Receive Maximum; other packets still answered; the rest follow the acknowledgements",
    probe: async (b) => {
      const { topic, p } = await pubSub(b, 'rm');
      const s = await b.connect({ properties: { receiveMaximum: 2 } });
      await subscribe(s, [{ topic, qos: 1 }]);
      for (let i = 0; i < 5; i++) await publishAcked(p, topic, String(i));
      const first = await publishes(s, 5, 800);
      s.raw(packet(0xc0));
      const pingresp = (await s.next('pingresp', 3000)) !== undefined;
      const rest = [];
      for (let n = 0; n < 5 && first.length + rest.length < 5; n++) {
        for (const m of n === 0 ? first : rest.slice(-2)) s.send({ cmd: 'puback', messageId: m.messageId, reasonCode: 0 });
        rest.push(...(await publishes(s, 2, 1500)));
      }
      return { beforeAcks: first.length, pingresp, total: first.length + rest.length };
    },
    spec: { beforeAcks: 2, pingresp: true, total: 5 },
  },
  {
    ids: ['MQTT-3.8.3-3'],
    says: "No Local: the client's own messages are not sent back to it, others' are",
    probe: async (b) => {
      const { topic, s, p } = await pubSub(b, 'nl', { nl: true });
      await publishAcked(s, topic, 'own');
      await publishAcked(p, topic, 'other');
      return { delivered: texts(await publishes(s, 2, 700)) };
    },
    spec: { delivered: ['other'] },
  },
  {
    ids: ['MQTT-3.8.3-4'],
    says: 'No Local on a shared subscription is a protocol error: closed',
    probe: async (b) => {
      const c = await b.connect();
      const granted = await subscribe(c, [{ topic: `$share/g/conf/${b.id('nls')}`, qos: 0, nl: true }]);
      return { refused: granted === undefined ? await closes(c) : granted[0] >= 0x80 };
    },
    spec: { refused: true },
    mosquitto: { answers: { refused: false }, why: 'grants it (SUBACK 0x00)' },
  },
  {
    ids: ['MQTT-4.8.2-1', 'MQTT-4.8.2-2'],
    says: 'a share name of at least one character, without "+", "#" or "/", followed by "/" and a filter: anything else is refused',
    probe: async (b) => {
      const refused = async (filter: string) => {
        const c = await b.connect();
        const granted = await subscribe(c, [{ topic: filter, qos: 0 }]);
        return granted === undefined ? await closes(c) : granted[0] >= 0x80;
      };
      return {
        emptyName: await refused('$share//conf/x'),
        plusName: await refused('$share/g+/conf/x'),
        noFilter: await refused('$share/g'),
      };
    },
    spec: { emptyName: true, plusName: true, noFilter: true },
    mosquitto: {
      answers: { emptyName: false, plusName: true, noFilter: false },
      why: 'grants an empty share name (`$share//<filter>`) and `$share/<name>` without a filter (SUBACK 0x00)',
    },
  },
  {
    ids: ['MQTT-4.8.2-3'],
    says: 'a shared subscription gets each message once per group, at most at the QoS granted',
    probe: async (b) => {
      const topic = `conf/${b.id('share')}`;
      const members = [await b.connect(), await b.connect()];
      for (const m of members) await subscribe(m, [{ topic: `$share/g/${topic}`, qos: 0 }]);
      const p = await b.connect();
      for (let i = 0; i < 4; i++) await publishAcked(p, topic, String(i));
      const got = (await Promise.all(members.map((m) => publishes(m, 4, 700)))).flat();
      return { delivered: texts(got).sort(), qos: [...new Set(got.map((m) => m.qos))] };
    },
    spec: { delivered: ['0', '1', '2', '3'], qos: [0] },
  },
  {
    ids: ['MQTT-3.11.3-1', 'MQTT-3.11.3-2'],
    says: 'UNSUBACK has a reason code per filter in order: 0x00 for a removed subscription, 0x11 for none',
    probe: async (b) => {
      const base = `conf/${b.id('unsubrc')}`;
      const c = await b.connect();
      await subscribe(c, [{ topic: `${base}/a`, qos: 0 }]);
      c.send({ cmd: 'unsubscribe', messageId: 7, unsubscriptions: [`${base}/none`, `${base}/a`] });
      const ack = await c.next('unsuback', 3000);
      return { codes: (ack as { granted?: number[]; reasonCode?: number[] } | undefined)?.granted };
    },
    spec: { codes: [0x11, 0x00] },
  },
];

const untestable: Untestable[] = [
  {
    ids: ['MQTT-3.1.2-9', 'MQTT-3.1.2-16', 'MQTT-3.1.2-17', 'MQTT-3.1.2-18', 'MQTT-3.1.2-19', 'MQTT-3.1.3-1', 'MQTT-3.1.3-3'],
    says: 'payload fields present as the flags say, in order',
    why: 'what the client writes; a broker reading them wrong shows in the session, will and login rows',
  },
  {
    ids: ['MQTT-3.1.2-20', 'MQTT-3.1.2-21', 'MQTT-3.2.2-21'],
    says: "the client keeps its (or the server's) keepalive",
    why: 'client obligations',
  },
  {
    ids: ['MQTT-3.1.2-30'],
    says: 'a client with an Authentication Method sends only AUTH or DISCONNECT before CONNACK',
    why: 'a client obligation; neither broker implements enhanced authentication (the [MQTT-4.12.0-1] row)',
  },
  {
    ids: ['MQTT-3.1.3-2', 'MQTT-3.1.3-4', 'MQTT-3.1.3-11', 'MQTT-3.1.3-12'],
    says: 'client id identifies the session; client id, will topic, user name are UTF-8',
    why: 'the session rows, and the [MQTT-1.5.4-1] row for the string reader every field goes through',
  },
  {
    ids: ['MQTT-3.1.3-8'],
    says: 'a client id the server rejects: CONNACK 0x85',
    why: "both brokers accept every well-formed client id by default (which to reject is the server's choice)",
  },
  { ids: ['MQTT-3.1.4-4', 'MQTT-3.1.4-5'], says: 'perform Clean Start processing, then CONNACK 0x00', why: 'observed by the session rows' },
  {
    ids: ['MQTT-3.2.2-1'],
    says: 'CONNACK flag bits 7-1 are 0',
    why: "mqtt-packet's parser (the probes' reader) rejects a CONNACK with them set, so every row that reads a CONNACK checks it",
  },
  {
    ids: ['MQTT-3.2.2-8', 'MQTT-3.4.2-1', 'MQTT-3.5.2-1', 'MQTT-3.6.2-1', 'MQTT-3.7.2-1', 'MQTT-3.14.2-1', 'MQTT-3.15.2-1'],
    says: "reason codes are from the packet's list",
    why: 'every reason code a row reads is checked against what the statement requires',
  },
  {
    ids: ['MQTT-3.2.2-9', 'MQTT-3.2.2-10', 'MQTT-3.2.2-12', 'MQTT-3.2.2-13'],
    says: 'Maximum QoS / Retain Available and wills beyond them',
    why: 'both brokers support QoS 2 and retain by default; `max_qos` / `retain_available` are tested in test/engine/mqprobe-v5.test.ts',
  },
  {
    ids: [
      'MQTT-3.2.2-4',
      'MQTT-3.2.2-5',
      'MQTT-3.2.2-11',
      'MQTT-3.2.2-14',
      'MQTT-3.2.2-15',
      'MQTT-3.2.2-17',
      'MQTT-3.2.2-18',
      'MQTT-3.3.2-10',
    ],
    says: "what a client does with CONNACK's answers",
    why: "client obligations (the server's side of topic aliases and packet size is in the rows)",
  },
  {
    ids: [
      'MQTT-3.2.2-19',
      'MQTT-3.2.2-20',
      'MQTT-3.4.2-2',
      'MQTT-3.4.2-3',
      'MQTT-3.5.2-2',
      'MQTT-3.5.2-3',
      'MQTT-3.6.2-2',
      'MQTT-3.6.2-3',
      'MQTT-3.7.2-2',
      'MQTT-3.7.2-3',
      'MQTT-3.9.2-1',
      'MQTT-3.9.2-2',
      'MQTT-3.11.2-1',
      'MQTT-3.11.2-2',
      'MQTT-3.14.2-3',
      'MQTT-3.14.2-4',
      'MQTT-3.15.2-2',
      'MQTT-3.15.2-3',
    ],
    says: "no Reason String / User Property that would exceed the client's Maximum Packet Size",
    why: 'neither broker sends reason strings on acknowledgements here (the [MQTT-3.1.2-29] row sees none)',
  },
  {
    ids: ['MQTT-3.3.2-1', 'MQTT-3.3.2-13', 'MQTT-3.3.2-19', 'MQTT-3.8.3-1', 'MQTT-3.10.3-1'],
    says: 'topic names, filters, Response Topic, Content Type are UTF-8',
    why: 'the same string reader as the [MQTT-1.5.4-1] row',
  },
  {
    ids: ['MQTT-3.3.2-14'],
    says: 'the Response Topic has no wildcards',
    why: 'a sender obligation; what a server does with one is not specified',
  },
  {
    ids: ['MQTT-3.3.4-6'],
    says: 'a PUBLISH from a client carries no Subscription Identifier',
    why: 'a client obligation; the spec names no server answer (both brokers accept such a PUBLISH)',
  },
  {
    ids: ['MQTT-3.3.4-7', 'MQTT-3.3.4-8'],
    says: "the client keeps to the server's Receive Maximum",
    why: "client obligations; the server's answer beyond it (DISCONNECT 0x93) is tested in test/engine/vendored-engine.test.ts",
  },
  {
    ids: ['MQTT-3.10.4-3'],
    says: 'QoS 1/2 deliveries begun before UNSUBSCRIBE are completed',
    why: 'needs a delivery caught between the two packets; not reproducible without timing',
  },
  {
    ids: ['MQTT-3.14.2-2'],
    says: 'the server sends no Session Expiry Interval on DISCONNECT',
    why: 'no row makes either broker send DISCONNECT with properties; the takeover row reads the one mqprobe sends (0x8E, no properties)',
  },
  {
    ids: ['MQTT-3.14.4-1', 'MQTT-3.14.4-2', 'MQTT-4.13.2-1'],
    says: 'after DISCONNECT (or a reason code ≥ 0x80) nothing more, and the connection is closed',
    why: 'the rows that get a DISCONNECT or a refusing CONNACK check the close',
  },
  {
    ids: ['MQTT-3.15.1-1', 'MQTT-4.12.0-2', 'MQTT-4.12.0-3', 'MQTT-4.12.0-4', 'MQTT-4.12.0-5', 'MQTT-4.12.1-1', 'MQTT-4.12.1-2'],
    says: 'enhanced authentication and re-authentication',
    why: 'not implemented by either broker (as Mosquitto without an auth plugin): an Authentication Method is refused, the [MQTT-4.12.0-1] row',
  },
  {
    ids: ['MQTT-4.1.0-1', 'MQTT-4.2.0-1'],
    says: 'session kept while connected; an ordered lossless transport',
    why: 'no observation of its own (TCP here)',
  },
  {
    ids: [
      'MQTT-4.3.2-1',
      'MQTT-4.3.2-2',
      'MQTT-4.3.2-3',
      'MQTT-4.3.3-1',
      'MQTT-4.3.3-2',
      'MQTT-4.3.3-3',
      'MQTT-4.3.3-4',
      'MQTT-4.3.3-5',
      'MQTT-4.3.3-6',
      'MQTT-4.3.3-7',
      'MQTT-4.3.3-9',
      'MQTT-4.3.3-13',
      'MQTT-4.4.0-2',
    ],
    says: "the sender's side of QoS 1/2, expiry after sending, acknowledgements ≥ 0x80",
    why: 'the server as sender is seen in the packet-id, redelivery and Receive Maximum rows; failing PUBREC from a client is not probed',
  },
  {
    ids: ['MQTT-4.5.0-2', 'MQTT-4.6.0-1', 'MQTT-4.6.0-2', 'MQTT-4.6.0-3', 'MQTT-4.6.0-4'],
    says: "order of a client's re-sends and acknowledgements",
    why: 'client obligations',
  },
  { ids: ['MQTT-4.7.3-3'], says: 'topics encode to at most 65,535 bytes', why: 'a length the two-byte prefix cannot exceed' },
  {
    ids: ['MQTT-4.8.2-4', 'MQTT-4.8.2-5', 'MQTT-4.8.2-6'],
    says: 'a shared-subscription message in flight to a member that goes away',
    why: "the choice of member is the server's; test/broker/shared-subscriptions.test.ts covers members that disconnect",
  },
  {
    ids: ['MQTT-6.0.0-1', 'MQTT-6.0.0-2', 'MQTT-6.0.0-3', 'MQTT-6.0.0-4'],
    says: 'MQTT over WebSocket',
    why: 'TCP listeners here; the WebSocket listeners have their own tests (test/broker/listeners.test.ts)',
  },
];

export const mqtt5: Suite = { title: 'MQTT 5.0 normative statements', version: 5, statements: [...reused, ...own], untestable };
