/** What a running bridge reports (broker/bridge/bridge.ts), through the probe's `bridge-state` event. */
export type BridgeState = 'connecting' | 'connected' | 'waiting' | 'idle' | 'stopped';

/** What a bridge reports: state changes (for capture, $SYS and logs) and its counters. */
export interface BridgeEvent {
  bridge: string;
  state: BridgeState;
  /** host:port of the remote tried or connected. */
  address?: string;
  /** Why a connection ended or failed (TLS error, CONNACK code, socket error); never a password. */
  reason?: string;
  /** Seconds until the next attempt, when one is planned. */
  retryIn?: number;
  /** What happened, for capture: a connection made, a connection lost (or left: lazy, stop), an attempt failed. */
  change?: 'connected' | 'disconnected' | 'connect-failed';
}
