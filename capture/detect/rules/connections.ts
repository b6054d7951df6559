import { maxTrackedParam, WINDOWED, type Params } from '../params.js';
import { humanWindow, isInternal, type Emit, type RuleDefinition } from '../detector.js';
import { ThresholdCounter } from '../windows.js';

export const connectionStorm: RuleDefinition = {
  spec: {
    name: 'connection-storm',
    description: 'Connection attempts (accepted or refused) from one source address at a rate no device fleet behind one address reaches.',
    entity: 'source.ip',
    risk: 'medium',
    minimum: '100 connection attempts from one address within 10 s (20 per second reach it in 5 s)',
    params: [
      { name: 'threshold', kind: 'count', default: '100', doc: 'Attempts (client-connected + connection-refused) from one address that raise the alert. Keep it above the number of devices behind your largest NAT: they all reconnect at once after a network blip.' },
      { name: 'window', kind: 'duration', default: '10s', doc: 'Sliding window the attempts must fall in.' },
      maxTrackedParam('Source addresses', WINDOWED),
    ],
  },
  create(p: Params, emit: Emit) {
    const counter = new ThresholdCounter(p.num('threshold'), p.num('window'), p.num('max_tracked'));
    return {
      actions: ['client-connected', 'connection-refused'],
      observe(o) {
        if (o.ip === undefined || isInternal(o.clientId)) return;
        const ev = counter.hit(o.ip, o.time, o.seq);
        if (!ev) return;
        emit({
          key: `ip ${o.ip}`,
          time: o.time,
          message: `${ev.count} connection attempts from ${o.ip} within ${ev.span_s} s`,
          entities: { ip: o.ip },
          evidence: ev,
        });
      },
    };
  },
};

export const clientFlapping: RuleDefinition = {
  spec: {
    name: 'client-flapping',
    description: 'One client id connecting again and again: a crash loop, two devices sharing an id and taking the session from each other, or a client being hijacked.',
    entity: 'mqtt.client_id',
    risk: 'medium',
    minimum: '10 connects of one client id within 5 min',
    params: [
      { name: 'threshold', kind: 'count', default: '10', doc: 'Accepted connects of one client id that raise the alert.' },
      { name: 'window', kind: 'duration', default: '5m', doc: 'Sliding window the connects must fall in.' },
      maxTrackedParam('Client ids', WINDOWED),
    ],
  },
  create(p: Params, emit: Emit) {
    const counter = new ThresholdCounter(p.num('threshold'), p.num('window'), p.num('max_tracked'));
    return {
      actions: ['client-connected'],
      observe(o) {
        if (o.clientId === undefined || isInternal(o.clientId)) return;
        const ev = counter.hit(o.clientId, o.time, o.seq);
        if (!ev) return;
        emit({
          key: `client ${o.clientId}`,
          time: o.time,
          message: `client ${o.clientId} connected ${ev.count} times within ${humanWindow(ev.span_s * 1000)}`,
          entities: { clientId: o.clientId, ip: o.ip, user: o.user },
          evidence: ev,
        });
      },
    };
  },
};
