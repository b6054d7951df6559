import { thresholdParams, type Params } from '../params.js';
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
      ...thresholdParams(
        '100',
        'Attempts (client-connected + connection-refused) from one address',
        '10s',
        'Source addresses',
        ' Keep it above the number of devices behind your largest NAT: they all reconnect at once after a network blip.',
      ),
    ],
  },
  create(p: Params, emit: Emit) {
    const counter = ThresholdCounter.of(p);
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
    description:
      'One client id connecting again and again: a crash loop, two devices sharing an id and taking the session from each other, or a client being hijacked.',
    entity: 'mqtt.client_id',
    risk: 'medium',
    minimum: '10 connects of one client id within 5 min',
    params: [...thresholdParams('10', 'Accepted connects of one client id', '5m', 'Client ids')],
  },
  create(p: Params, emit: Emit) {
    const counter = ThresholdCounter.of(p);
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
