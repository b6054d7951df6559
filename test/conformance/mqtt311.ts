/**
 * MQTT 3.1.1 (OASIS Standard, 29 October 2014): the normative statements a server must satisfy that a
 * client can observe, each with its probe (raw packets through wire.ts) and what the statement requires.
 */
import type { Statement, Suite, Untestable } from './statements.js';
import {
  closedAfter,
  closes,
  code,
  packet,
  pause,
  publish,
  publishAcked,
  publishes,
  sendConnect,
  leave,
  together,
  props,
  keep,
  refusal,
  str,
  subscribe,
  texts,
} from './wire-probes.js';

const willOf = (topic: string, payload: string, extra: Record<string, unknown> = {}) => ({
  will: { topic, payload: Buffer.from(payload), qos: 0, retain: false, ...extra },
});

/** A subscriber, then a will client whose connection ends as `end` says; what the subscriber and a later one see. */
async function willProbe(b: import('./statements.js').Target, end: 'drop' | 'disconnect', retain = false) {
  const topic = `conf/${b.id('will')}`;
  const watcher = await b.connect();
  await subscribe(watcher, [{ topic, qos: 0 }]);
  const dying = await b.connect(willOf(topic, 'gone', { retain }));
  if (end === 'disconnect') dying.send({ cmd: 'disconnect' });
  else dying.end();
  const live = await publishes(watcher, 1, end === 'drop' ? 3000 : 800);
  const later = await b.connect();
  await subscribe(later, [{ topic, qos: 0 }]);
  const stored = await publishes(later, 1, 500);
  return { delivered: texts(live), retainedForLater: stored.map((m) => m.retain) };
}

/** Whether a subscription to `filter` is refused (SUBACK 0x80 or the connection closed). */
async function filterRefused(b: import('./statements.js').Target, filter: string): Promise<boolean> {
  const c = await b.connect();
  const granted = await subscribe(c, [{ topic: filter, qos: 0 }]);
  return granted === undefined ? c.closed : granted[0] >= 0x80;
}

const statements: Statement[] = [
  {
    ids: ['MQTT-3.1.0-1'],
    says: 'the first packet must be CONNECT: anything else closes the connection',
    probe: async (b) => {
      const c = await b.open();
      c.raw(packet(0xc0));
      return { closed: await closes(c), answered: c.received.map((p) => p.cmd) };
    },
    spec: { closed: true, answered: [] },
  },
  {
    ids: ['MQTT-3.1.0-2'],
    says: 'a second CONNECT is a protocol violation: the connection is closed',
    probe: async (b) => {
      const c = await b.connect();
      c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: b.version, clean: true, keepalive: 30, clientId: b.id('again') });
      return { closed: await closes(c) };
    },
    spec: { closed: true },
  },
  {
    ids: ['MQTT-3.1.2-1'],
    says: 'a protocol name other than "MQTT" is not accepted as MQTT 3.1.1',
    probe: async (b) => {
      return refusal(await sendConnect(b, { name: 'MQTX', flags: 0x02, clientId: b.id('name') }));
    },
    spec: { accepted: false, closed: true },
  },
  {
    ids: ['MQTT-3.1.2-2'],
    says: 'an unsupported protocol level gets CONNACK 0x01 and the connection is closed',
    probe: async (b) => {
      const c = await sendConnect(b, { level: 7, flags: 0x02, clientId: b.id('level') });
      const connack = await c.next('connack', 3000);
      return { connack: code(connack), closed: await closes(c) };
    },
    spec: { connack: 1, closed: true },
  },
  {
    ids: ['MQTT-3.1.2-3', 'MQTT-3.1.4-1'],
    says: 'the reserved CONNECT flag must be 0; a CONNECT that breaks the format is closed without acceptance',
    probe: async (b) => {
      return refusal(await sendConnect(b, { flags: 0x03, clientId: b.id('reserved') }));
    },
    spec: { accepted: false, closed: true },
  },
  {
    ids: ['MQTT-3.1.2-4', 'MQTT-3.1.2-5', 'MQTT-3.2.2-2', 'MQTT-4.5.0-1'],
    says: 'clean session 0: the session (subscriptions, QoS 1 messages that arrive meanwhile) outlives the connection and is resumed with session present 1',
    probe: async (b) => {
      const id = b.id('keep');
      const topic = `conf/${id}`;
      const first = await b.connect({ clientId: id, ...keep(b) });
      await subscribe(first, [{ topic, qos: 1 }]);
      await leave(first);
      await publishAcked(await b.connect(), topic, 'while away');
      const again = await b.attempt({ clientId: id, ...keep(b) });
      const got = await publishes(again.c, 1);
      return { sessionPresent: again.connack?.sessionPresent, got: texts(got), qos: got[0]?.qos };
    },
    spec: { sessionPresent: true, got: ['while away'], qos: 1 },
  },
  {
    ids: ['MQTT-3.1.2-6', 'MQTT-3.2.2-1'],
    says: 'clean session 1 discards the previous session and starts a new one with session present 0',
    probe: async (b) => {
      const id = b.id('clean');
      const topic = `conf/${id}`;
      const first = await b.connect({ clientId: id, ...keep(b) });
      await subscribe(first, [{ topic, qos: 1 }]);
      first.end();
      await closes(first, 200);
      const again = await b.attempt({ clientId: id, clean: true });
      await publishAcked(await b.connect(), topic, 'to nobody');
      return { sessionPresent: again.connack?.sessionPresent, got: texts(await publishes(again.c, 1, 500)) };
    },
    spec: { sessionPresent: false, got: [] },
  },
  {
    ids: ['MQTT-3.2.2-3'],
    says: 'clean session 0 without a stored session: session present 0',
    probe: async (b) => {
      const r = await b.attempt({ clientId: b.id('fresh'), ...keep(b) });
      return { connack: code(r.connack), sessionPresent: r.connack?.sessionPresent };
    },
    spec: { connack: 0, sessionPresent: false },
  },
  {
    ids: ['MQTT-3.1.2-8', 'MQTT-3.1.2-16'],
    says: 'the will is published when the connection closes without DISCONNECT; will retain 0: not retained',
    probe: (b) => willProbe(b, 'drop'),
    spec: { delivered: ['gone'], retainedForLater: [] },
  },
  {
    ids: ['MQTT-3.1.2-17'],
    says: 'will retain 1: the will is published as a retained message',
    probe: (b) => willProbe(b, 'drop', true),
    spec: { delivered: ['gone'], retainedForLater: [true] },
  },
  {
    ids: ['MQTT-3.1.2-10', 'MQTT-3.14.4-3'],
    says: 'DISCONNECT removes the will without publishing it',
    probe: (b) => willProbe(b, 'disconnect'),
    spec: { delivered: [], retainedForLater: [] },
  },
  {
    ids: ['MQTT-3.1.2-11', 'MQTT-3.1.2-13'],
    says: 'will flag 0 requires will QoS 0: a CONNECT with will QoS 1 and no will is refused',
    probe: async (b) => {
      return refusal(await sendConnect(b, { flags: 0x02 | 0x08, clientId: b.id('wq') }));
    },
    spec: { accepted: false, closed: true },
  },
  {
    ids: ['MQTT-3.1.2-14'],
    says: 'will QoS 3 is not allowed: refused',
    probe: async (b) => {
      return refusal(
        await sendConnect(b, { flags: 0x02 | 0x04 | 0x18, clientId: b.id('wq3'), rest: [...props(b), str('conf/w'), str('x')] }),
      );
    },
    spec: { accepted: false, closed: true },
  },
  {
    ids: ['MQTT-3.1.2-15'],
    says: 'will flag 0 requires will retain 0: refused',
    probe: async (b) => {
      return refusal(await sendConnect(b, { flags: 0x02 | 0x20, clientId: b.id('wr') }));
    },
    spec: { accepted: false, closed: true },
  },
  {
    ids: ['MQTT-3.1.2-22'],
    says: 'user name flag 0 requires password flag 0: a password without a user name is refused',
    probe: async (b) => {
      return refusal(await sendConnect(b, { flags: 0x02 | 0x40, clientId: b.id('pw'), rest: [str('secret')] }));
    },
    spec: { accepted: false, closed: true },
  },
  {
    ids: ['MQTT-3.1.2-24'],
    says: 'no packet within 1.5 × keepalive: the server closes the connection; a PINGREQ in time keeps it',
    probe: async (b) => {
      const started = Date.now();
      const idle = await b.connect({ keepalive: 1 });
      const pinging = await b.connect({ keepalive: 1 });
      const timer = setInterval(() => pinging.raw(packet(0xc0)), 400);
      const idleClosed = await closes(idle, 6000);
      const closedAfterMs = Date.now() - started;
      await pause(Math.max(0, 2500 - closedAfterMs));
      clearInterval(timer);
      return { idleClosed, closedBeforeKeepalive: closedAfterMs < 1000, pingingOpen: !pinging.closed };
    },
    spec: { idleClosed: true, closedBeforeKeepalive: false, pingingOpen: true },
  },
  {
    ids: ['MQTT-3.1.3-5'],
    says: 'client ids of 1 to 23 characters [0-9a-zA-Z] are allowed',
    probe: async (b) => {
      const r = await b.attempt({
        clientId: `Z9${b.id('x')}`
          .replace(/[^0-9a-zA-Z]/g, 'q')
          .padEnd(23, 'a')
          .slice(0, 23),
      });
      return { connack: code(r.connack) };
    },
    spec: { connack: 0 },
  },
  {
    ids: ['MQTT-3.1.3-6'],
    says: 'an empty client id with clean session 1 is given a unique id: two such clients stay connected side by side',
    probe: async (b) => {
      const one = await b.attempt({ clientId: '' });
      const two = await b.attempt({ clientId: '' });
      await pause(300);
      return { one: code(one.connack), two: code(two.connack), bothOpen: !one.c.closed && !two.c.closed };
    },
    spec: { one: 0, two: 0, bothOpen: true },
  },
  {
    ids: ['MQTT-3.1.3-7', 'MQTT-3.1.3-8', 'MQTT-3.2.2-4', 'MQTT-3.2.2-5'],
    says: 'an empty client id with clean session 0: CONNACK 0x02 with session present 0, then the connection is closed',
    probe: async (b) => {
      const c = await sendConnect(b, { flags: 0x00, clientId: '' });
      const connack = await c.next('connack', 3000);
      return { connack: code(connack), sessionPresent: connack?.sessionPresent, closed: await closes(c) };
    },
    spec: { connack: 2, sessionPresent: false, closed: true },
  },
  {
    ids: ['MQTT-3.1.4-5'],
    says: 'after a refused CONNECT nothing the client sent is processed',
    probe: async (b) => {
      const topic = `conf/${b.id('refused')}`;
      await closes(await sendConnect(b, { flags: 0x00, clientId: '' }, packet(0x31, str(topic), Buffer.from('must not be stored'))));
      const later = await b.connect();
      await subscribe(later, [{ topic, qos: 0 }]);
      return { stored: texts(await publishes(later, 1, 500)) };
    },
    spec: { stored: [] },
  },
  {
    ids: ['MQTT-3.1.4-2'],
    says: 'a CONNECT with the client id of a connected client disconnects the existing one',
    probe: async (b) => {
      const id = b.id('twin');
      const old = await b.connect({ clientId: id });
      const fresh = await b.attempt({ clientId: id });
      return { oldClosed: await closes(old), fresh: code(fresh.connack), freshOpen: !fresh.c.closed };
    },
    spec: { oldClosed: true, fresh: 0, freshOpen: true },
  },
  {
    ids: ['MQTT-3.2.0-1'],
    says: 'the first packet from the server is CONNACK, even when the client sent more behind its CONNECT',
    probe: async (b) => {
      const topic = `conf/${b.id('first')}`;
      await publishAcked(await b.connect(), topic, 'kept', { retain: true });
      const sub = packet(0x82, [0, 9], ...props(b), str(topic), [1]);
      const c = await sendConnect(b, { flags: 0x02, clientId: b.id('eager') }, Buffer.concat([sub, packet(0xc0)]));
      await c.next('pingresp', 3000);
      return { first: c.received[0]?.cmd };
    },
    spec: { first: 'connack' },
  },
  {
    ids: ['MQTT-3.3.1-1', 'MQTT-4.4.0-1'],
    says: 'an unacknowledged QoS 1 delivery is sent again on reconnect (clean session 0) with DUP 1 and the same packet id',
    probe: async (b) => {
      const id = b.id('dup');
      const topic = `conf/${id}`;
      const sub = await b.connect({ clientId: id, ...keep(b) });
      await subscribe(sub, [{ topic, qos: 1 }]);
      await publishAcked(await b.connect(), topic, 'again');
      const first = await sub.next('publish', 3000);
      sub.end();
      await closes(sub, 200);
      const again = await b.connect({ clientId: id, ...keep(b) });
      const resent = await again.next('publish', 3000);
      return { firstDup: first?.dup, resentDup: resent?.dup, sameId: resent !== undefined && resent.messageId === first?.messageId };
    },
    spec: { firstDup: false, resentDup: true, sameId: true },
  },
  {
    ids: ['MQTT-3.3.1-2', 'MQTT-3.3.1-3', 'MQTT-4.3.1-1'],
    says: 'DUP is 0 on QoS 0 and set per outgoing packet: a publish received with DUP 1 is forwarded with DUP 0',
    probe: async (b) => {
      const topic = `conf/${b.id('dupfwd')}`;
      const sub = await b.connect();
      await subscribe(sub, [{ topic, qos: 1 }]);
      const pub = await b.connect();
      publish(pub, topic, 'q0');
      await publishAcked(pub, topic, 'q1', { dup: true });
      const got = await publishes(sub, 2);
      return { dups: got.map((m) => m.dup) };
    },
    spec: { dups: [false, false] },
  },
  {
    ids: ['MQTT-3.3.1-4'],
    says: 'a PUBLISH with both QoS bits set is a protocol violation: closed',
    probe: (b) => closedAfter(b, packet(0x36, str('conf/q3'), [0, 1], ...props(b), Buffer.from('x'))),
    spec: { closed: true },
  },
  {
    ids: ['MQTT-3.3.1-5', 'MQTT-3.3.1-6', 'MQTT-3.3.1-8'],
    says: 'RETAIN 1 stores the message, replacing the one before; a new subscription gets it with RETAIN 1',
    probe: async (b) => {
      const topic = `conf/${b.id('retain')}`;
      const pub = await b.connect();
      await publishAcked(pub, topic, 'one', { retain: true });
      await publishAcked(pub, topic, 'two', { retain: true });
      const sub = await b.connect();
      await subscribe(sub, [{ topic, qos: 1 }]);
      const got = await publishes(sub, 2, 700);
      return { got: texts(got), retain: got.map((m) => m.retain) };
    },
    spec: { got: ['two'], retain: [true] },
  },
  {
    ids: ['MQTT-3.3.1-7'],
    says: 'a retained QoS 0 message replaces the retained message before it',
    probe: async (b) => {
      const topic = `conf/${b.id('retain0')}`;
      const pub = await b.connect();
      await publishAcked(pub, topic, 'qos1', { retain: true });
      publish(pub, topic, 'qos0', { retain: true });
      pub.raw(packet(0xc0));
      await pub.next('pingresp', 3000);
      const sub = await b.connect();
      await subscribe(sub, [{ topic, qos: 1 }]);
      return { got: texts(await publishes(sub, 2, 700)) };
    },
    spec: { got: ['qos0'] },
  },
  {
    ids: ['MQTT-3.3.1-9'],
    says: 'a message forwarded to an existing subscription has RETAIN 0, even when published retained',
    probe: async (b) => {
      const topic = `conf/${b.id('live')}`;
      const sub = await b.connect();
      await subscribe(sub, [{ topic, qos: 0 }]);
      await publishAcked(await b.connect(), topic, 'live', { retain: true });
      return { retain: (await publishes(sub, 1)).map((m) => m.retain) };
    },
    spec: { retain: [false] },
  },
  {
    ids: ['MQTT-3.3.1-10', 'MQTT-3.3.1-11'],
    says: 'a zero-byte retained message is delivered as usual and removes the retained message; it is not stored',
    probe: async (b) => {
      const topic = `conf/${b.id('clear')}`;
      const pub = await b.connect();
      await publishAcked(pub, topic, 'kept', { retain: true });
      const sub = await b.connect();
      await subscribe(sub, [{ topic, qos: 1 }]);
      await publishes(sub, 1);
      await publishAcked(pub, topic, '', { retain: true });
      const live = await publishes(sub, 1);
      const later = await b.connect();
      await subscribe(later, [{ topic, qos: 1 }]);
      return { liveSizes: live.map((m) => m.payload?.length), later: (await publishes(later, 1, 500)).length };
    },
    spec: { liveSizes: [0], later: 0 },
  },
  {
    ids: ['MQTT-3.3.1-12'],
    says: 'RETAIN 0 neither stores nor removes a retained message',
    probe: async (b) => {
      const topic = `conf/${b.id('keep0')}`;
      const pub = await b.connect();
      await publishAcked(pub, topic, 'kept', { retain: true });
      await publishAcked(pub, topic, 'passing');
      const sub = await b.connect();
      await subscribe(sub, [{ topic, qos: 1 }]);
      return { got: texts(await publishes(sub, 2, 700)) };
    },
    spec: { got: ['kept'] },
  },
  {
    ids: ['MQTT-3.3.2-2', 'MQTT-4.7.1-1'],
    says: 'a topic name must not contain wildcards: PUBLISH to a/+ or a/# is closed',
    probe: async (b) => ({
      plus: (await closedAfter(b, packet(0x30, str('conf/+'), ...props(b), Buffer.from('x')))).closed,
      hash: (await closedAfter(b, packet(0x30, str('conf/#'), ...props(b), Buffer.from('x')))).closed,
    }),
    spec: { plus: true, hash: true },
  },
  {
    ids: ['MQTT-3.3.2-3'],
    says: 'the topic name sent to a subscriber is the published one, matching its filter',
    probe: async (b) => {
      const base = `conf/${b.id('match')}`;
      const sub = await b.connect();
      await subscribe(sub, [{ topic: `${base}/+/z`, qos: 0 }]);
      await publishAcked(await b.connect(), `${base}/y/z`, 'm');
      return { topics: (await publishes(sub, 1)).map((m) => m.topic?.replace(base, '~')) };
    },
    spec: { topics: ['~/y/z'] },
  },
  {
    ids: ['MQTT-3.3.4-1', 'MQTT-2.3.1-6', 'MQTT-4.3.2-2', 'MQTT-4.3.3-2'],
    says: 'QoS 1 gets PUBACK, QoS 2 PUBREC then PUBCOMP for PUBREL, each with the packet id of what it acknowledges',
    probe: async (b) => {
      const c = await b.connect();
      c.send({ cmd: 'publish', topic: `conf/${b.id('acks')}`, payload: 'a', qos: 1, messageId: 301 });
      c.send({ cmd: 'publish', topic: `conf/${b.id('acks')}`, payload: 'b', qos: 2, messageId: 302 });
      const puback = await c.next('puback', 3000);
      const pubrec = await c.next('pubrec', 3000);
      c.send({ cmd: 'pubrel', messageId: 302 });
      const pubcomp = await c.next('pubcomp', 3000);
      return { puback: puback?.messageId, pubrec: pubrec?.messageId, pubcomp: pubcomp?.messageId };
    },
    spec: { puback: 301, pubrec: 302, pubcomp: 302 },
  },
  {
    ids: ['MQTT-4.3.3-2'],
    says: 'QoS 2: a PUBLISH repeated before PUBREL is acknowledged again but delivered once; after PUBCOMP the id is a new message',
    probe: async (b) => {
      const topic = `conf/${b.id('once')}`;
      const sub = await b.connect();
      await subscribe(sub, [{ topic, qos: 0 }]);
      const pub = await b.connect();
      const first = { cmd: 'publish', topic, payload: 'first', qos: 2, messageId: 77 };
      pub.raw(together(b, first, { ...first, dup: true }));
      const recs = [await pub.next('pubrec', 3000), await pub.next('pubrec', 3000)].filter(Boolean).length;
      pub.send({ cmd: 'pubrel', messageId: 77 });
      await pub.next('pubcomp', 3000);
      pub.send({ cmd: 'publish', topic, payload: 'second', qos: 2, messageId: 77 });
      await pub.next('pubrec', 3000);
      pub.send({ cmd: 'pubrel', messageId: 77 });
      await pub.next('pubcomp', 3000);
      return { pubrecs: recs, delivered: texts(await publishes(sub, 3, 700)) };
    },
    spec: { pubrecs: 2, delivered: ['first', 'second'] },
  },
  {
    ids: ['MQTT-4.3.2-2'],
    says: 'QoS 1: after PUBACK, a PUBLISH with the same packet id is a new message',
    probe: async (b) => {
      const topic = `conf/${b.id('reuse')}`;
      const sub = await b.connect();
      await subscribe(sub, [{ topic, qos: 0 }]);
      const pub = await b.connect();
      await publishAcked(pub, topic, 'one', { messageId: 5 });
      await publishAcked(pub, topic, 'two', { messageId: 5, dup: true });
      return { delivered: texts(await publishes(sub, 2)) };
    },
    spec: { delivered: ['one', 'two'] },
  },
  {
    ids: ['MQTT-2.3.1-1', 'MQTT-4.3.2-1'],
    says: 'the server gives its QoS 1 deliveries non-zero packet ids, distinct while unacknowledged',
    probe: async (b) => {
      const topic = `conf/${b.id('ids')}`;
      const sub = await b.connect();
      await subscribe(sub, [{ topic, qos: 1 }]);
      const pub = await b.connect();
      for (const p of ['a', 'b', 'c']) await publishAcked(pub, topic, p);
      const ids = (await publishes(sub, 3)).map((m) => m.messageId ?? 0);
      return { count: ids.length, nonZero: ids.every((i) => i !== 0), distinct: new Set(ids).size === ids.length };
    },
    spec: { count: 3, nonZero: true, distinct: true },
  },
  {
    ids: ['MQTT-3.6.1-1'],
    says: 'PUBREL with fixed-header flags other than 0010 is closed',
    probe: (b) => closedAfter(b, packet(0x60, [0, 1])),
    spec: { closed: true },
  },
  {
    ids: ['MQTT-3.8.1-1'],
    says: 'SUBSCRIBE with fixed-header flags other than 0010 is closed',
    probe: (b) => closedAfter(b, packet(0x80, [0, 1], ...props(b), str('conf/x'), [0])),
    spec: { closed: true },
  },
  {
    ids: ['MQTT-3.8.3-3'],
    says: 'SUBSCRIBE without a topic filter is a protocol violation: closed',
    probe: (b) => closedAfter(b, packet(0x82, [0, 1], ...props(b))),
    spec: { closed: true },
  },
  {
    ids: ['MQTT-3.8.3-4'],
    says: 'requested QoS 3 or reserved bits set in a SUBSCRIBE: closed',
    probe: async (b) => ({
      qos3: (await closedAfter(b, packet(0x82, [0, 1], ...props(b), str('conf/x'), [3]))).closed,
      reserved: (await closedAfter(b, packet(0x82, [0, 1], ...props(b), str('conf/x'), [b.version === 5 ? 0xc0 : 0x10]))).closed,
    }),
    spec: { qos3: true, reserved: true },
  },
  {
    ids: ['MQTT-3.8.4-1', 'MQTT-3.8.4-2', 'MQTT-3.8.4-4', 'MQTT-3.8.4-5', 'MQTT-3.9.3-1', 'MQTT-3.9.3-2'],
    says: 'one SUBACK with the packet id of the SUBSCRIBE and a return code per filter, in order',
    probe: async (b) => {
      const c = await b.connect();
      const base = `conf/${b.id('many')}`;
      c.send({ cmd: 'subscribe', messageId: 4242, subscriptions: [0, 1, 2].map((qos) => ({ topic: `${base}/${qos}`, qos })) });
      const ack = await c.next('suback', 3000);
      return { messageId: ack?.messageId, granted: ack?.granted, more: (await c.all('suback', 300)).length };
    },
    spec: { messageId: 4242, granted: [0, 1, 2], more: 0 },
  },
  {
    ids: ['MQTT-3.8.4-3'],
    says: 'an identical filter replaces the subscription (its QoS), and the retained messages are sent again',
    probe: async (b) => {
      const topic = `conf/${b.id('replace')}`;
      const pub = await b.connect();
      await publishAcked(pub, topic, 'kept', { retain: true });
      const sub = await b.connect();
      await subscribe(sub, [{ topic, qos: 0 }]);
      const firstRetained = await publishes(sub, 1);
      await subscribe(sub, [{ topic, qos: 1 }]);
      const againRetained = await publishes(sub, 1);
      await publishAcked(pub, topic, 'new');
      const live = await publishes(sub, 2, 700);
      return { retained: texts([...firstRetained, ...againRetained]), live: live.map((m) => [String(m.payload), m.qos]) };
    },
    spec: { retained: ['kept', 'kept'], live: [['new', 1]] },
  },
  {
    ids: ['MQTT-3.8.4-6'],
    says: 'a delivery has the lower of the published QoS and the granted QoS',
    probe: async (b) => {
      const base = `conf/${b.id('minqos')}`;
      const sub = await b.connect();
      await subscribe(sub, [
        { topic: `${base}/low`, qos: 1 },
        { topic: `${base}/high`, qos: 2 },
      ]);
      const pub = await b.connect();
      pub.send({ cmd: 'publish', topic: `${base}/low`, payload: 'q2', qos: 2, messageId: 9 });
      await pub.next('pubrec', 3000);
      pub.send({ cmd: 'pubrel', messageId: 9 });
      await pub.next('pubcomp', 3000);
      publish(pub, `${base}/high`, 'q0');
      const got = await publishes(sub, 2);
      return { qos: Object.fromEntries(got.map((m) => [String(m.payload), m.qos])) };
    },
    spec: { qos: { q2: 1, q0: 0 } },
  },
  {
    ids: ['MQTT-3.3.5-1'],
    says: 'overlapping subscriptions: the message is delivered at the highest QoS they grant',
    probe: async (b) => {
      const base = `conf/${b.id('overlap')}`;
      const sub = await b.connect();
      await subscribe(sub, [
        { topic: `${base}/#`, qos: 0 },
        { topic: `${base}/x`, qos: 1 },
      ]);
      await publishAcked(await b.connect(), `${base}/x`, 'm');
      const got = await publishes(sub, 2, 700);
      return { highest: Math.max(...got.map((m) => m.qos ?? 0)) };
    },
    spec: { highest: 1 },
  },
  {
    ids: ['MQTT-3.10.1-1'],
    says: 'UNSUBSCRIBE with fixed-header flags other than 0010 is closed',
    probe: (b) => closedAfter(b, packet(0xa0, [0, 1], ...props(b), str('conf/x'))),
    spec: { closed: true },
  },
  {
    ids: ['MQTT-3.10.3-2'],
    says: 'UNSUBSCRIBE without a topic filter is a protocol violation: closed',
    probe: (b) => closedAfter(b, packet(0xa2, [0, 1], ...props(b))),
    spec: { closed: true },
  },
  {
    ids: ['MQTT-3.10.4-1', 'MQTT-3.10.4-2', 'MQTT-3.10.4-4', 'MQTT-3.10.4-5', 'MQTT-3.10.4-6'],
    says: 'UNSUBSCRIBE compares filters character by character, stops deliveries, and gets one UNSUBACK with its packet id, also for a filter never subscribed',
    probe: async (b) => {
      const base = `conf/${b.id('unsub')}`;
      const sub = await b.connect();
      await subscribe(sub, [
        { topic: `${base}/a`, qos: 0 },
        { topic: `${base}/+`, qos: 0 },
      ]);
      sub.send({ cmd: 'unsubscribe', messageId: 555, unsubscriptions: [`${base}/a`, `${base}/never`] });
      const acks = await sub.all('unsuback', 500);
      const pub = await b.connect();
      await publishAcked(pub, `${base}/a`, 'via +');
      const got = await publishes(sub, 2, 700);
      return { unsubacks: acks.map((a) => a.messageId), delivered: texts(got) };
    },
    spec: { unsubacks: [555], delivered: ['via +'] },
  },
  {
    ids: ['MQTT-3.12.4-1'],
    says: 'PINGREQ gets PINGRESP',
    probe: async (b) => {
      const c = await b.connect();
      c.raw(packet(0xc0));
      return { pingresp: (await c.next('pingresp', 3000)) !== undefined };
    },
    spec: { pingresp: true },
  },
  {
    ids: ['MQTT-3.14.1-1'],
    says: 'DISCONNECT with reserved flags set is closed as a protocol violation, and the will is published',
    probe: async (b) => {
      const topic = `conf/${b.id('baddisc')}`;
      const watcher = await b.connect();
      await subscribe(watcher, [{ topic, qos: 0 }]);
      const c = await b.connect(willOf(topic, 'will'));
      c.raw(packet(0xe1));
      return { closed: await closes(c), will: texts(await publishes(watcher, 1, 3000)) };
    },
    spec: { closed: true, will: ['will'] },
  },
  {
    ids: ['MQTT-4.6.0-5', 'MQTT-4.6.0-6'],
    says: 'messages from one client on one topic and QoS reach a subscriber in the order they were published',
    probe: async (b) => {
      const topic = `conf/${b.id('order')}`;
      const sub = await b.connect();
      await subscribe(sub, [{ topic, qos: 1 }]);
      const pub = await b.connect();
      const sent = Array.from({ length: 20 }, (_, i) => `${i % 2}:${i}`);
      for (const p of sent) publish(pub, topic, p, { qos: Number(p[0]) });
      const got = texts(await publishes(sub, 20));
      // the order is kept per topic and QoS: the two QoS may interleave
      const byQos = (all: string[], q: string) => all.filter((p) => p.startsWith(q)).join();
      return { qos0InOrder: byQos(got, '0') === byQos(sent, '0'), qos1InOrder: byQos(got, '1') === byQos(sent, '1') };
    },
    spec: { qos0InOrder: true, qos1InOrder: true },
  },
  {
    ids: ['MQTT-4.7.1-2', 'MQTT-4.7.1-3'],
    says: '"#" only last and alone in its level, "+" alone in its level: other filters are refused (SUBACK 0x80 or closed)',
    probe: async (b) => ({
      hashInside: await filterRefused(b, 'conf/#/x'),
      hashGlued: await filterRefused(b, 'conf/x#'),
      plusGlued: await filterRefused(b, 'conf/x+/y'),
    }),
    spec: { hashInside: true, hashGlued: true, plusGlued: true },
  },
  {
    ids: ['MQTT-4.7.1-2', 'MQTT-4.7.1-3'],
    says: 'wildcard matching as §4.7.1 shows it: a/# matches a, a/+ does not; + matches an empty level, also the one before a leading /',
    probe: async (b) => {
      const base = b.id('wild');
      const sub = await b.connect();
      const filters = [`${base}/#`, `${base}/+`, `${base}x/+/+`, `+/${base}y/+`];
      for (const f of filters) await subscribe(sub, [{ topic: f, qos: 0 }]);
      const pub = await b.connect();
      for (const topic of [base, `${base}x//x`, `/${base}y/x`]) await publishAcked(pub, topic, topic);
      const got = texts(await publishes(sub, 5, 700)).map((p) => p.replace(base, '~'));
      return { delivered: got.sort() };
    },
    spec: { delivered: ['/~y/x', '~', '~x//x'] },
  },
  {
    ids: ['MQTT-4.7.2-1'],
    says: 'filters starting with a wildcard do not match topics starting with $ ($SYS/# does)',
    probe: async (b) => {
      const all = await b.connect();
      const got: string[] = [];
      await subscribe(all, [
        { topic: '#', qos: 0 },
        { topic: '+/broker/#', qos: 0 },
      ]);
      const sys = await b.connect();
      await subscribe(sys, [{ topic: '$SYS/#', qos: 0 }]);
      const sysGot = await publishes(sys, 1, 3000);
      for (const m of await all.all('publish', 500)) got.push(m.topic ?? '');
      return { sysDirect: sysGot.length > 0, dollarViaWildcard: got.filter((x) => x.startsWith('$')).length };
    },
    spec: { sysDirect: true, dollarViaWildcard: 0 },
  },
  {
    ids: ['MQTT-4.7.3-1'],
    says: 'topic names and filters are at least one character: an empty topic name or filter is refused',
    probe: async (b) => ({
      emptyTopicClosed: (await closedAfter(b, packet(0x30, str(''), ...props(b), Buffer.from('x')))).closed,
      emptyFilterRefused: await filterRefused(b, ''),
    }),
    spec: { emptyTopicClosed: true, emptyFilterRefused: true },
  },
  {
    ids: ['MQTT-4.7.3-2', 'MQTT-1.5.3-2'],
    says: 'U+0000 in a topic name closes the connection',
    probe: (b) => closedAfter(b, packet(0x30, str(Buffer.from('conf/a\u0000b')), ...props(b), Buffer.from('x'))),
    spec: { closed: true },
  },
  {
    ids: ['MQTT-1.5.3-1'],
    says: 'ill-formed UTF-8 (an encoded surrogate) in a topic name closes the connection',
    probe: (b) => closedAfter(b, packet(0x30, str(Buffer.from([0x63, 0x2f, 0xed, 0xa0, 0x80])), ...props(b), Buffer.from('x'))),
    spec: { closed: true },
  },
  {
    ids: ['MQTT-1.5.3-3', 'MQTT-4.7.3-4'],
    says: 'no normalisation when matching: case, a trailing "/" and U+FEFF count',
    probe: async (b) => {
      const base = `conf/${b.id('norm')}`;
      const sub = await b.connect();
      await subscribe(sub, [{ topic: `${base}/Case`, qos: 0 }]);
      await subscribe(sub, [{ topic: `${base}/\uFEFFbom`, qos: 0 }]);
      const pub = await b.connect();
      for (const topic of [`${base}/case`, `${base}/Case/`, `${base}/bom`, `${base}/\uFEFFbom`, `${base}/Case`])
        await publishAcked(pub, topic, topic);
      return { delivered: texts(await publishes(sub, 5, 700)).map((p) => p.replace(base, '~')) };
    },
    spec: { delivered: ['~/\uFEFFbom', '~/Case'] },
  },
  {
    ids: ['MQTT-3.3.5-2'],
    says: 'a PUBLISH the server will not accept (here to $SYS) gets a positive acknowledgement or the connection is closed',
    probe: async (b) => {
      const c = await b.connect();
      publish(c, '$SYS/conformance', 'x', { qos: 1 });
      const ack = await c.next('puback', 3000);
      return { ackedOrClosed: ack !== undefined || c.closed };
    },
    spec: { ackedOrClosed: true },
  },
];

const untestable: Untestable[] = [
  { ids: ['MQTT-3.1.2-23'], says: 'the client sends PINGREQ within its keepalive', why: 'a client obligation' },
  {
    ids: ['MQTT-3.1.3-1', 'MQTT-3.1.3-3', 'MQTT-3.1.2-9', 'MQTT-3.1.2-18', 'MQTT-3.1.2-19', 'MQTT-3.1.2-20', 'MQTT-3.1.2-21'],
    says: 'payload fields present as the flags say, in order',
    why: 'what the client writes; a broker reading them wrong shows in the session, will and login rows',
  },
  { ids: ['MQTT-3.1.3-2'], says: 'the client id identifies the session state', why: 'seen only through the clean-session rows above' },
  {
    ids: ['MQTT-3.1.3-4', 'MQTT-3.1.3-10', 'MQTT-3.1.3-11'],
    says: 'client id, will topic and user name are UTF-8',
    why: 'covered for topic names by the [MQTT-1.5.3-1] row; the same string reader serves every field',
  },
  {
    ids: ['MQTT-3.1.3-9'],
    says: 'a client id the server rejects gets CONNACK 0x02',
    why: 'which ids a server rejects beyond the empty one is its own choice; the empty-id row checks the code',
  },
  {
    ids: ['MQTT-3.1.4-3', 'MQTT-3.1.4-4'],
    says: 'perform clean-session processing, then acknowledge with CONNACK 0x00',
    why: 'observed by the session rows; no separate observation',
  },
  {
    ids: ['MQTT-3.2.2-6'],
    says: 'no return code applies: close without CONNACK',
    why: 'a client cannot make a broker run out of return codes',
  },
  {
    ids: ['MQTT-2.3.1-2', 'MQTT-2.3.1-3', 'MQTT-2.3.1-4', 'MQTT-2.3.1-5'],
    says: 'packet identifiers chosen by the client',
    why: 'client obligations; the server side is the [MQTT-2.3.1-1] row',
  },
  {
    ids: ['MQTT-3.3.2-1'],
    says: 'the topic name is the first field of PUBLISH, UTF-8',
    why: 'the format itself; the UTF-8 part is the [MQTT-1.5.3-1] row',
  },
  {
    ids: ['MQTT-3.8.3-1', 'MQTT-3.10.3-1'],
    says: 'topic filters are UTF-8',
    why: 'the same string reader as topic names ([MQTT-1.5.3-1] row)',
  },
  { ids: ['MQTT-3.8.3-2'], says: 'a server without wildcard support rejects wildcard filters', why: 'both brokers support wildcards' },
  {
    ids: ['MQTT-3.10.4-3'],
    says: 'QoS 1/2 deliveries begun before UNSUBSCRIBE are completed',
    why: 'needs a delivery caught between the two packets; not reproducible from a client without timing',
  },
  {
    ids: ['MQTT-4.3.3-1', 'MQTT-4.3.2-3'],
    says: 'the sender keeps QoS 1/2 messages unacknowledged until PUBACK/PUBREC',
    why: 'seen through the redelivery row ([MQTT-4.4.0-1])',
  },
  { ids: ['MQTT-4.5.0-2'], says: 'the client acknowledges every PUBLISH', why: 'a client obligation' },
  {
    ids: ['MQTT-4.6.0-1', 'MQTT-4.6.0-2', 'MQTT-4.6.0-3', 'MQTT-4.6.0-4'],
    says: 'order of re-sends and acknowledgements',
    why: 'client obligations (the server side of ordering is the [MQTT-4.6.0-6] row)',
  },
  { ids: ['MQTT-4.7.3-3'], says: 'topics encode to at most 65,535 bytes', why: 'a length the two-byte prefix cannot exceed' },
  { ids: ['MQTT-4.8.0-1'], says: 'a protocol violation closes the connection', why: 'the rule behind every "closed" row above' },
  {
    ids: ['MQTT-6.0.0-1', 'MQTT-6.0.0-2', 'MQTT-6.0.0-3', 'MQTT-6.0.0-4'],
    says: 'MQTT over WebSocket',
    why: 'TCP listeners here; the WebSocket listeners have their own tests (test/broker/listeners.test.ts)',
  },
];

export const mqtt311: Suite = { title: 'MQTT 3.1.1 normative statements', version: 4, statements, untestable };
