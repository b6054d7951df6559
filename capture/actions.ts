/**
 * The `event.action` vocabulary (Elastic's Mosquitto integration names where one exists), and
 * which actions `capture_events default` leaves out for their volume.
 */
export const ACTIONS = [
  'broker-starting',
  'broker-stopped',
  'connection-opened',
  'client-connected',
  'connection-refused',
  'client-disconnected',
  'keepalive-timeout',
  'protocol-error',
  'publish-received',
  'publish-denied',
  'will-published',
  'subscription-granted',
  'subscription-denied',
  'unsubscribed',
  'ping-received',
  'publish-acknowledged',
  'publish-delivered',
  'bridge-connected',
  'bridge-disconnected',
  'bridge-connect-failed',
  'http-refused',
  'kafka-bridge-delivering',
  'kafka-bridge-failing',
  'capture-dropped',
] as const;

export type Action = (typeof ACTIONS)[number];

/** Off unless `capture_events all` or listed by name: one per PINGREQ, per QoS ack, per outbound delivery. */
export const HIGH_VOLUME: ReadonlySet<string> = new Set(['ping-received', 'publish-acknowledged', 'publish-delivered']);

/** Always recorded, whatever capture_events says: without them a receiver cannot prove what it lost. */
export const ALWAYS: ReadonlySet<string> = new Set(['capture-dropped']);

/** The predicate for one capture_events setting; alerts (event.kind alert) pass it too. */
export function actionFilter(events: 'default' | 'all' | readonly string[]): (action: string) => boolean {
  if (events === 'all') return () => true;
  if (events === 'default') return (a) => !HIGH_VOLUME.has(a);
  const set = new Set(events);
  return (a) => set.has(a) || ALWAYS.has(a);
}
