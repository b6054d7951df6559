import { isIP, type Socket } from 'node:net';
import type { KeySpec } from './config/spec.js';
import type { BrokerTarget } from './config/types.js';
import type { ListenerConfig } from './config/types.js';
import { ConfigError } from './config/errors.js';

/**
 * The PROXY protocol (HAProxy's proxy-protocol.txt), versions 1 (text) and 2 (binary), read
 * before the first MQTT byte on listeners with `enable_proxy_protocol`: the client's own
 * address replaces the proxy's in capture events and log lines. A header that is missing,
 * malformed, oversized or of the other version closes the connection with the reason.
 */
export const proxyProtocolKey: KeySpec<BrokerTarget> = {
  key: 'enable_proxy_protocol',
  usage: '1 | 2',
  doc: 'Mosquitto 2.1: connections to this listener start with a PROXY protocol header of this version (HAProxy `send-proxy` = 1, `send-proxy-v2` = 2, or a cloud load balancer); the client address it carries is the one logged and captured (source.ip/port). Connections without a valid header are closed. Plain mqtt listeners only: with TLS or websockets it stops the start. ACL patterns (%c, %u) involve no address, so they are unaffected.',
  scope: 'listener',
  set(t, v) {
    v.count(1);
    const n = v.int(0);
    if (n !== 1 && n !== 2) v.fail('enable_proxy_protocol must be 1 or 2');
    t.listener().proxyProtocol = n === 1 ? 1 : 2;
  },
};

/** What mqprobe cannot do with a PROXY header stops the start, naming the listener. */
export function validateProxyListener(l: ListenerConfig): void {
  if (!l.proxyProtocol) return;
  if (l.tls.certfile)
    throw new ConfigError(
      l.pos,
      'enable_proxy_protocol',
      'not supported by mqprobe on a TLS listener (terminate TLS at the proxy and send-proxy-v2 to a plain listener)',
    );
  if (l.protocol === 'websockets')
    throw new ConfigError(l.pos, 'enable_proxy_protocol', 'not supported by mqprobe on a websockets listener');
}

export interface ProxiedAddress {
  /** Undefined for `PROXY UNKNOWN` and v2 LOCAL (health checks): the socket's own address stands. */
  remoteAddress?: string;
  remotePort?: number;
}

const V2_SIGNATURE = Buffer.from('\r\n\r\n\0\r\nQUIT\n', 'binary');
/** v1 headers are at most 107 bytes; v2 addresses plus TLVs are bounded here, far above what proxies send. */
const V1_MAX = 107;
const V2_MAX_BODY = 4096;
const HEADER_TIMEOUT_MS = 10_000;

class ProxyHeaderError extends Error {}

/** Parses a header at the start of `buf`: the address and its length, `undefined` when more bytes are needed. Throws on a bad header. */
export function parseProxyHeader(buf: Buffer, version: 1 | 2): { address: ProxiedAddress; length: number } | undefined {
  return version === 1 ? parseV1(buf) : parseV2(buf);
}

function parseV1(buf: Buffer): { address: ProxiedAddress; length: number } | undefined {
  const prefix = 'PROXY ';
  const head = buf.subarray(0, prefix.length).toString('latin1');
  if (!prefix.startsWith(head)) throw new ProxyHeaderError('not a PROXY protocol v1 header');
  const end = buf.indexOf('\r\n');
  if (end < 0) {
    if (buf.length >= V1_MAX) throw new ProxyHeaderError(`PROXY v1 header longer than ${V1_MAX} bytes`);
    return undefined;
  }
  if (end + 2 > V1_MAX) throw new ProxyHeaderError(`PROXY v1 header longer than ${V1_MAX} bytes`);
  const line = buf.subarray(0, end).toString('latin1');
  const f = line.split(' ');
  if (f[1] === 'UNKNOWN') return { address: {}, length: end + 2 };
  if (f.length !== 6 || (f[1] !== 'TCP4' && f[1] !== 'TCP6'))
    throw new ProxyHeaderError(`malformed PROXY v1 header "${line.slice(0, 60)}"`);
  const [, family, src, , sport, dport] = f;
  if (isIP(src) !== (family === 'TCP4' ? 4 : 6) || isIP(f[3]) !== isIP(src))
    throw new ProxyHeaderError(`bad ${family} address in PROXY v1 header`);
  const port = (s: string) => (/^\d{1,5}$/.test(s) && Number(s) <= 65535 ? Number(s) : undefined);
  if (port(sport) === undefined || port(dport) === undefined) throw new ProxyHeaderError('bad port in PROXY v1 header');
  return { address: { remoteAddress: src, remotePort: port(sport) }, length: end + 2 };
}

function parseV2(buf: Buffer): { address: ProxiedAddress; length: number } | undefined {
  const sig = buf.subarray(0, V2_SIGNATURE.length);
  if (!V2_SIGNATURE.subarray(0, sig.length).equals(sig)) throw new ProxyHeaderError('not a PROXY protocol v2 header');
  if (buf.length < 16) return undefined;
  const verCmd = buf[12];
  if (verCmd >> 4 !== 2) throw new ProxyHeaderError(`PROXY v2 header with version ${verCmd >> 4}`);
  const command = verCmd & 0x0f;
  if (command > 1) throw new ProxyHeaderError(`PROXY v2 header with unknown command ${command}`);
  const bodyLength = buf.readUInt16BE(14);
  if (bodyLength > V2_MAX_BODY) throw new ProxyHeaderError(`PROXY v2 header of ${bodyLength} bytes (at most ${V2_MAX_BODY})`);
  if (buf.length < 16 + bodyLength) return undefined;
  const length = 16 + bodyLength;
  if (command === 0) return { address: {}, length }; // LOCAL: the proxy's own connection (health check)
  const body = buf.subarray(16, length);
  const family = buf[13] >> 4;
  const transport = buf[13] & 0x0f;
  if (family === 0 || transport !== 1) return { address: {}, length }; // UNSPEC or not a stream: keep the socket's address
  if (family === 1) {
    if (body.length < 12) throw new ProxyHeaderError('PROXY v2 IPv4 addresses truncated');
    return { address: { remoteAddress: [...body.subarray(0, 4)].join('.'), remotePort: body.readUInt16BE(8) }, length };
  }
  if (family === 2) {
    if (body.length < 36) throw new ProxyHeaderError('PROXY v2 IPv6 addresses truncated');
    const src = body.subarray(0, 16);
    const mapped = src.subarray(0, 10).every((b) => b === 0) && src.readUInt16BE(10) === 0xffff;
    const groups = Array.from({ length: 8 }, (_, i) => src.readUInt16BE(i * 2).toString(16)).join(':');
    // the URL parser writes an IPv6 address in its canonical short form
    const remoteAddress = mapped ? [...src.subarray(12)].join('.') : new URL(`http://[${groups}]/`).hostname.slice(1, -1);
    return { address: { remoteAddress, remotePort: body.readUInt16BE(32) }, length };
  }
  return { address: {}, length }; // AF_UNIX: no IP to show
}

/**
 * Reads the header from a fresh socket, puts back whatever followed it, and hands over the
 * address; on a bad header (or none within 10 s) calls `refuse` and destroys the socket.
 */
export function readProxyHeader(
  sock: Socket,
  version: 1 | 2,
  accept: (address: ProxiedAddress) => void,
  refuse: (err: Error) => void,
): void {
  let buf = Buffer.alloc(0);
  const fail = (err: Error) => {
    cleanup();
    refuse(err);
    sock.destroy();
  };
  const timer = setTimeout(
    () => fail(new ProxyHeaderError(`no PROXY v${version} header within ${HEADER_TIMEOUT_MS / 1000} s`)),
    HEADER_TIMEOUT_MS,
  );
  const onClose = () => cleanup();
  const cleanup = () => {
    clearTimeout(timer);
    sock.off('data', onData);
    sock.off('close', onClose);
  };
  const onData = (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    let parsed;
    try {
      parsed = parseProxyHeader(buf, version);
    } catch (err) {
      return fail(err as Error);
    }
    if (!parsed) return;
    cleanup();
    sock.pause();
    if (buf.length > parsed.length) sock.unshift(buf.subarray(parsed.length));
    accept(parsed.address);
  };
  sock.on('data', onData);
  sock.on('close', onClose);
}
