/** One raw MQTT connection of the load generator: a socket, a frame reader and a swappable packet handler. */
import net from 'node:net';
import { FrameReader, PACKET } from './packets.js';

export type PacketHandler = (type: number, flags: number, buf: Buffer, start: number, end: number) => void;

export class RawClient {
  readonly socket: net.Socket;
  private handler: PacketHandler = () => undefined;
  private readonly reader = new FrameReader((type, flags, buf, start, end) => this.handler(type, flags, buf, start, end));
  /** Runs after each received chunk has been handled (batch replies, refill windows). */
  afterChunk: () => void = () => undefined;
  closedError: string | undefined;

  /** `localAddress`: the source address (127.0.0.x), for more connections than one address has ports. */
  constructor(port: number, localAddress?: string) {
    this.socket = net.connect({ port, host: '127.0.0.1', noDelay: true, localAddress });
    this.socket.on('data', (chunk: Buffer) => {
      try {
        this.reader.push(chunk);
      } catch (err) {
        this.socket.destroy(err as Error);
        return;
      }
      this.afterChunk();
    });
    this.socket.on('error', (err) => (this.closedError ??= err.message));
    this.socket.on('close', () => (this.closedError ??= 'closed by the broker'));
  }

  onPacket(handler: PacketHandler): void {
    this.handler = handler;
  }

  /**
   * Sends a pre-encoded packet and resolves with the first byte of the answer of `type`'s body
   * (CONNACK: return code; SUBACK: granted QoS), or rejects when the connection ends first.
   */
  request(packet: Buffer, type: number, timeoutMs = 30_000): Promise<number> {
    return new Promise((resolve, reject) => {
      const fail = (why: string) => {
        clearTimeout(timer);
        this.socket.off('close', onClose);
        reject(new Error(why));
      };
      const onClose = () =>
        fail(
          `connection closed before ${type === PACKET.CONNACK ? 'CONNACK' : 'SUBACK'}${this.closedError ? ` (${this.closedError})` : ''}`,
        );
      const timer = setTimeout(() => fail(`no answer to packet type ${type} within ${timeoutMs} ms`), timeoutMs);
      this.socket.once('close', onClose);
      this.onPacket((t, _flags, buf, start, end) => {
        if (t !== type) return;
        clearTimeout(timer);
        this.socket.off('close', onClose);
        this.onPacket(() => undefined);
        // CONNACK: flags byte then return code; SUBACK (one subscription): the granted QoS is the last
        // byte (after the packet id, and in MQTT 5 after the property length)
        resolve(buf[type === PACKET.CONNACK ? start + 1 : end - 1]);
      });
      this.socket.write(packet);
    });
  }
}

/** Connects and completes the MQTT handshake; rejects unless the broker accepts (return code 0). */
export async function connectClient(port: number, connectPacket: Buffer): Promise<RawClient> {
  const c = new RawClient(port);
  const rc = await c.request(connectPacket, PACKET.CONNACK);
  if (rc !== 0) {
    c.socket.destroy();
    throw new Error(`CONNACK return code ${rc}`);
  }
  return c;
}
