import type { MqttClient } from 'mqtt';

type PacketWriter = { _writePacket(packet: { cmd: string; bridgeMode?: boolean }, cb?: unknown): void };

/**
 * Makes an mqtt.js 3.1/3.1.1 client announce itself as a bridge: its CONNECT carries the protocol level
 * with the top bit set (0x83/0x84), which Mosquitto (and the engine, through mqtt-packet's `bridgeMode`)
 * answer with no-local and retain-as-published subscriptions. mqtt.js 5.16.0 (pinned) builds the CONNECT
 * without mqtt-packet's `bridgeMode` field, so its packet writer is wrapped to add it.
 */
export function announceAsBridge(client: MqttClient): void {
  const writer = client as unknown as PacketWriter;
  const write = writer._writePacket.bind(client);
  writer._writePacket = (packet, cb) => write(packet.cmd === 'connect' ? { ...packet, bridgeMode: true } : packet, cb);
}
