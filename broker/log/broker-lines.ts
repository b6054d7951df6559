import { isIPv6 } from 'node:net';
import type { ListenerConfig } from '../config/types.js';

/**
 * Mosquitto 2.0's lines for the broker's own life (src/mosquitto.c, net.c): the names are
 * mqprobe's, the shapes Mosquitto's, so log readers that look for them find them.
 */
export const startingLine = (version: string) => `mqprobe version ${version} starting`;
export const configLine = (file: string | undefined) => (file ? `Config loaded from ${file}.` : 'Using default config.');
export const runningLine = (version: string) => `mqprobe version ${version} running`;
export const terminatingLine = (version: string) => `mqprobe version ${version} terminating`;

/** `Opening ipv4 listen socket on port 1883.`: one line per address family, as Mosquitto opens one socket for each. */
export function listenLines(b: { config: ListenerConfig; port: number }): string[] {
  const l = b.config;
  if (l.protocol === 'websockets') return [`Opening websockets listen socket on port ${b.port}.`];
  const families = l.bind ? [isIPv6(l.bind) ? 'ipv6' : 'ipv4'] : l.socketDomain ? [l.socketDomain] : ['ipv4', 'ipv6'];
  return families.map((f) => `Opening ${f} listen socket on port ${b.port}.`);
}
