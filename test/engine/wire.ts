/**
 * A raw MQTT 5 client for the engine evaluation: sends exactly the packets (or bytes) a probe
 * writes, never acknowledges on its own, and records every packet the broker sends, decoded by
 * mqtt-packet, so a probe can read reason codes and properties as they were on the wire.
 */
import net from 'node:net';
import mqttPacket, { type Packet } from 'mqtt-packet';

/** The fields of a decoded packet the probes read (mqtt-packet's union type, flattened). */
export interface Received {
  cmd: string;
  reasonCode?: number;
  returnCode?: number;
  sessionPresent?: boolean;
  properties?: Record<string, unknown>;
  granted?: number[];
  topic?: string;
  payload?: Buffer;
  qos?: number;
  retain?: boolean;
  dup?: boolean;
  messageId?: number;
}

export class WireClient {
  readonly received: Received[] = [];
  closed = false;
  parseError: string | undefined;
  /** The socket error that ended the connection (ECONNRESET: the broker reset it). */
  socketError: string | undefined;
  private readonly socket: net.Socket;
  private readonly parser;
  private waiters: (() => void)[] = [];

  private constructor(
    port: number,
    readonly version: 4 | 5,
  ) {
    this.parser = mqttPacket.parser({ protocolVersion: version });
    this.socket = net.connect({ port, host: '127.0.0.1' });
    this.parser.on('packet', (p) => {
      this.received.push(p as unknown as Received);
      this.wake();
    });
    this.parser.on('error', (e) => (this.parseError = e.message));
    this.socket.on('data', (d) => this.parser.parse(d));
    this.socket.on('error', (e: NodeJS.ErrnoException) => (this.socketError ??= e.code ?? e.message));
    this.socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  static async open(port: number, version: 4 | 5 = 5): Promise<WireClient> {
    const c = new WireClient(port, version);
    await new Promise<void>((resolve, reject) => {
      c.socket.once('connect', resolve);
      c.socket.once('error', reject);
    });
    return c;
  }

  /** Connects (MQTT 5 unless `version` says 4) and returns the CONNACK, or undefined when the broker closed instead. */
  static async connect(
    port: number,
    connect: Record<string, unknown> = {},
    version: 4 | 5 = 5,
  ): Promise<{ c: WireClient; connack: Received | undefined }> {
    const c = await WireClient.open(port, version);
    c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clean: true, keepalive: 30, clientId: '', ...connect });
    // generous: the machine these runs share is loaded, and a slow CONNACK is not what is probed
    return { c, connack: await c.next('connack', 5000) };
  }

  send(packet: Record<string, unknown>): void {
    this.socket.write(mqttPacket.generate(packet as unknown as Packet, { protocolVersion: this.version }));
  }

  raw(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** The first not yet taken packet of `cmd` (removed from `received`), or undefined after `ms` or when the connection closed. */
  async next(cmd: string, ms = 1500): Promise<Received | undefined> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.received.findIndex((p) => p.cmd === cmd);
      if (i >= 0) return this.received.splice(i, 1)[0];
      if (this.closed || Date.now() >= deadline) return undefined;
      await new Promise<void>((r) => {
        const timer = setTimeout(r, deadline - Date.now());
        this.waiters.push(() => {
          clearTimeout(timer);
          r();
        });
      });
    }
  }

  /** Publishes as they arrive, until `n` have or `ms` pass without one. */
  async publishes(n: number, ms = 2000): Promise<Received[]> {
    const got: Received[] = [];
    while (got.length < n) {
      const p = await this.next('publish', ms);
      if (!p) break;
      got.push(p);
    }
    return got;
  }

  /** Everything of `cmd` that arrives within `ms`. */
  async all(cmd: string, ms = 700): Promise<Received[]> {
    await new Promise((r) => setTimeout(r, ms));
    const got = this.received.filter((p) => p.cmd === cmd);
    this.received.splice(0, this.received.length, ...this.received.filter((p) => p.cmd !== cmd));
    return got;
  }

  /** Resolves true when the broker closes the connection within `ms`. */
  async closedWithin(ms = 1500): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this.closed;
  }

  end(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
