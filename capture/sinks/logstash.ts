import type net from 'node:net';
import type { Logger } from 'pino';
import type { CaptureConfig } from '../config.js';
import type { SinkIO } from '../runner.js';
import { SinkUnavailableError } from './elasticsearch.js';
import { LineBuffer } from './line-buffer.js';
import { openConnection } from './connect.js';
import { urlArg, type SinkDefinition } from './definition.js';

const IDLE_SAFE_MS = 5000;

export interface LogstashSinkOptions {
  url: URL;
  tls: CaptureConfig['tls'];
  log: Logger;
  connectTimeoutMs?: number;
  /**
   * json_lines over TCP has no acknowledgement: what the receiver had not read when the connection
   * broke is lost without a trace. The lines written most recently (up to this many bytes) are
   * therefore sent again on the next connection; a receiver drops the copies by `event.id`.
   */
  resendBytes?: number;
}

/**
 * `capture_sink logstash tcp://host:port | tls://host:port`: newline-delimited JSON to a Logstash
 * `tcp` input with the `json_lines` codec (or anything speaking it). TLS uses capture_tls_cafile
 * to check the server and presents capture_tls_certfile/keyfile as client certificate; the key is
 * read at each connection and never appears in a message.
 */
export function logstashSink(o: LogstashSinkOptions): SinkIO {
  const resendBytes = o.resendBytes ?? 256 * 1024;
  let sock: net.Socket | undefined;
  let broken = false;
  /** Lines written on connections since broken or still open, newest last, bounded by resendBytes. */
  let recent: string[] = [];
  let recentBytes = 0;
  let lastWriteAt = 0;
  /** Lines written on this connection since it last stood idle for IDLE_SAFE_MS: the ones a broken connection puts at risk. */
  let unsure = 0;

  const remember = (lines: string[]) => {
    for (const l of lines) {
      recent.push(l);
      recentBytes += l.length + 1;
    }
    let drop = 0;
    while (recentBytes > resendBytes && drop < recent.length - 1) recentBytes -= recent[drop++].length + 1;
    if (drop) recent = recent.slice(drop);
  };

  const connect = async (): Promise<net.Socket> => {
    const s = await openConnection(o.url, o.tls, o.connectTimeoutMs);
    // Logstash sends nothing; an end or error means the receiver is gone
    s.on('data', () => {});
    const lost = (err?: Error) => {
      if (sock !== s) return;
      broken = true;
      sock = undefined;
      // long after the last write the receiver has had every chance to read it: nothing is at risk
      if (Date.now() - lastWriteAt > IDLE_SAFE_MS) {
        recent = [];
        recentBytes = 0;
        unsure = 0;
      }
      s.destroy();
      o.log.warn({ receiver: `${o.url.protocol}//${o.url.host}`, err: err?.message }, 'logstash receiver closed the connection');
      // json_lines has no acknowledgement: what the receiver had not read is gone, and nobody can say how much that was
      const atRisk = unsure - recent.length;
      unsure = 0;
      if (atRisk > 0)
        o.log.warn(
          { receiver: `${o.url.protocol}//${o.url.host}`, events: atRisk, resent: recent.length },
          `up to ${atRisk} events written before the resend window may be lost (json_lines has no acknowledgement; capture_sink beats has one)`,
        );
    };
    s.on('end', () => lost());
    s.on('error', lost);
    s.on('close', () => lost());
    return s;
  };

  const out = new LineBuffer();
  const send = (s: net.Socket, lines: readonly string[]) =>
    new Promise<void>((resolve, reject) => {
      s.write(out.encode(lines), (err) =>
        err ? reject(new SinkUnavailableError(`write to ${o.url.host} failed: ${err.message}`)) : resolve(),
      );
    });

  return {
    async write(lines) {
      if (!sock) {
        const s = await connect();
        sock = s;
        if (broken && recent.length) {
          o.log.info({ events: recent.length }, 'resending the events written just before the connection broke');
          const again = recent;
          recent = [];
          recentBytes = 0;
          await send(s, again);
          remember(again);
          unsure += again.length;
        }
        broken = false;
      }
      const s = sock;
      await send(s, lines);
      if (sock !== s) throw new SinkUnavailableError(`connection to ${o.url.host} lost during the write`);
      remember(lines);
      if (Date.now() - lastWriteAt > IDLE_SAFE_MS) unsure = 0;
      unsure += lines.length;
      lastWriteAt = Date.now();
    },
    async close() {
      const s = sock;
      sock = undefined;
      if (!s) return;
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          s.destroy();
          resolve();
        }, 2000);
        s.end(() => {
          clearTimeout(t);
          resolve();
        });
      });
    },
  };
}

export const logstashSinkDefinition: SinkDefinition = {
  kinds: ['logstash'],
  usage: 'logstash tcp://host:port | logstash tls://host:port',
  parse: (v) => (v.count(2), { kind: 'logstash', target: urlArg(v, 1, ['tcp', 'tls']) }),
  name: (c) => {
    const u = new URL(c.target!);
    return `logstash:${u.protocol}//${u.host}`;
  },
  create: (c, env) => ({
    io: logstashSink({
      url: new URL(c.target!),
      tls: env.config.tls,
      log: env.log.child({ name: 'capture.logstash' }),
      resendBytes: env.resendBytes,
    }),
    spools: true,
  }),
};
