/** Capture events shaped by DESIGN.md's contract (ECS + mqtt.*), one of each kind the dashboard shows. */
import { randomUUID } from 'node:crypto';

let sequence = 0;

function base(action: string, extra: Record<string, unknown>): Record<string, unknown> {
  sequence++;
  const { event, ...rest } = extra as { event?: Record<string, unknown> };
  return {
    '@timestamp': new Date().toISOString(),
    ecs: { version: '8.11.0' },
    message: `${action} (test event ${sequence})`,
    event: {
      kind: 'event',
      category: ['network'],
      type: ['connection'],
      action,
      outcome: 'success',
      dataset: 'mqtt.capture',
      id: randomUUID(),
      sequence,
      ...event,
    },
    observer: {
      name: 'mqprobe-test',
      hostname: 'test-host',
      type: 'broker',
      product: 'mqprobe',
      vendor: 'mqprobe',
      version: '0.1.0',
      ingress: { interface: { name: 'tcp:1883' } },
    },
    service: { name: 'mqprobe', id: 'broker-1', type: 'mqtt', version: '0.1.0', node: { name: 'node-1' } },
    source: { ip: '192.0.2.10', port: 50123, address: '192.0.2.10' },
    network: { protocol: 'mqtt', transport: 'tcp', type: 'ipv4' },
    ...rest,
  };
}

/** One event of every action with every field of the contract somewhere among them. */
export function sampleEvents(): Record<string, unknown>[] {
  return [
    base('client-connected', {
      user: { name: 'sensor-user' },
      tls: {
        established: true,
        version: '1.3',
        version_protocol: 'tls',
        cipher: 'TLS_AES_256_GCM_SHA384',
        client: {
          server_name: 'broker.example',
          subject: 'CN=sensor-1',
          issuer: 'CN=Test CA',
          not_before: '2024-01-01T00:00:00.000Z',
          not_after: '2034-01-01T00:00:00.000Z',
          hash: { sha256: 'ab'.repeat(32) },
        },
      },
      mqtt: {
        client_id: 'sensor-1',
        protocol_version: 5,
        clean_session: true,
        keepalive: 60,
        reason_code: 0,
        session_expiry_interval: 3600,
        receive_maximum: 20,
        maximum_packet_size: 268435455,
        topic_alias_maximum: 10,
        user_property_names: ['site'],
        will: { topic: 'status/sensor-1', qos: 1, retain: true, payload_size: 7, payload: 'offline', payload_encoding: 'utf8' },
      },
    }),
    base('connection-refused', {
      event: { outcome: 'failure', reason: 'bad user name or password' },
      user: { name: 'intruder' },
      source: { ip: '2001:db8::7', port: 40000, address: '2001:db8::7' },
      mqtt: { client_id: 'guess-1', protocol_version: 4, reason_code: 134, reason_string: 'Bad user name or password' },
    }),
    base('publish-received', {
      event: { category: ['network'], type: ['info'] },
      mqtt: {
        client_id: 'sensor-1',
        topic: 'plant/line1/temp',
        qos: 1,
        retain: false,
        dup: false,
        message_id: 42,
        payload_size: 5,
        payload: '21.5C',
        payload_encoding: 'utf8',
        topic_alias: 3,
        content_type: 'text/plain',
        payload_format_indicator: 1,
        response_topic: 'plant/line1/reply',
        correlation_data_size: 16,
        message_expiry_interval: 60,
        user_property_names: ['unit', 'token'],
        user_properties: [
          { name: 'unit', value: 'C' },
          { name: 'token', value: 'kept only under capture_payload' },
        ],
      },
    }),
    base('subscription-granted', {
      mqtt: {
        client_id: 'dashboard',
        message_id: 7,
        subscriptions: [
          {
            topic: 'plant/#',
            qos: 1,
            granted_qos: 1,
            no_local: true,
            retain_as_published: false,
            retain_handling: 2,
            subscription_identifier: 268435455,
          },
          { topic: '$SYS/#', qos: 0, granted_qos: 128 },
        ],
      },
    }),
    base('subscription-denied', {
      event: { outcome: 'failure' },
      mqtt: { client_id: 'intruder', subscriptions: [{ topic: '#', qos: 0, granted_qos: 135 }] },
    }),
    base('subscription-denied', {
      event: { outcome: 'failure' },
      mqtt: {
        client_id: 'worker-2',
        topic: '$share/workers/jobs/#',
        reason_code: 158,
        shared_group: 'workers',
        subscription_identifier: 9,
        subscriptions: [{ topic: '$share/workers/jobs/#', qos: 1, granted_qos: 158, shared_group: 'workers' }],
      },
    }),
    base('client-disconnected', {
      event: { category: ['session'], type: ['end'], reason: 'session-taken-over' },
      mqtt: { client_id: 'sensor-1', reason_code: 4, server_reason_code: 142 },
    }),
    base('connection-refused', {
      event: { outcome: 'failure', reason: 'bad-authentication-method' },
      mqtt: { client_id: 'scram-1', protocol_version: 5, reason_code: 140, authentication_method: 'SCRAM-SHA-256' },
    }),
    base('capture-dropped', {
      event: { kind: 'metric', category: ['process'], type: ['info'] },
      mqprobe: { capture: { dropped: 12, sink: 'elasticsearch', reason: 'queue full' } },
    }),
    base('publish-denied', {
      event: { kind: 'alert', outcome: 'failure', severity: 3, risk_score: 47 },
      rule: { id: 'topic-scan', name: 'topic scanning', description: 'many distinct topics', category: 'reconnaissance' },
      mqtt: { client_id: 'intruder', topic: 'admin/reset', qos: 0 },
    }),
  ];
}

/** `n` publish events for volume tests. */
export function publishEvents(n: number, clientId = 'load'): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    out.push(
      JSON.stringify(
        base('publish-received', {
          mqtt: {
            client_id: `${clientId}-${i % 50}`,
            topic: `load/${i % 200}`,
            qos: i % 3,
            retain: false,
            dup: false,
            message_id: i % 65535,
            payload_size: 64,
          },
        }),
      ),
    );
  }
  return out;
}
