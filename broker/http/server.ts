import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { HttpAuth } from '../http-auth.js';
import { parseJsonBodiesBounded } from './bounded-json-bodies.js';

/**
 * The HTTP side-server (`http_listener`): /healthz and /metrics here (behind `http_metrics_token_file`
 * when set); SSE and bridge endpoints register their own routes on the same instance.
 */
export function createHttpServer(
  log: Logger,
  metrics: Registry,
  auth: HttpAuth,
  health: () => { ok: boolean; detail: Record<string, unknown> },
): FastifyInstance {
  const app = Fastify({
    loggerInstance: log.child({ name: 'http' }),
    logController: new LogController({ disableRequestLogging: true }),
    // no logger per request: pino runs its redaction over a child's bindings, about 0.7 ms for each
    // request (an open web view makes a few a second) only to tag the rare error line with a reqId
    childLoggerFactory: (logger) => logger,
    bodyLimit: 10 * 1024 * 1024,
  });
  parseJsonBodiesBounded(app as unknown as FastifyInstance);
  app.addHook('onRequest', refuseCrossSiteWrites);
  app.get('/healthz', { onRequest: auth.guardMetrics }, async (_req, reply) => {
    const h = health();
    return reply.code(h.ok ? 200 : 503).send({ status: h.ok ? 'ok' : 'unavailable', ...h.detail });
  });
  app.get('/metrics', { onRequest: auth.guardMetrics }, async (_req, reply) =>
    reply.type(metrics.contentType).send(await metrics.metrics()),
  );
  return app as unknown as FastifyInstance;
}

/**
 * CSRF guard for every write route of the listener (the web view's actions, /bans): a browser sends
 * `Origin` (and `Sec-Fetch-Site`) with every non-GET request, and a page of another site that made it
 * is refused, whatever credentials the browser would add. Clients other than browsers send neither.
 */
async function refuseCrossSiteWrites(req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
  if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return undefined;
  const site = req.headers['sec-fetch-site'];
  const origin = req.headers.origin;
  let sameOrigin = origin === undefined;
  if (origin !== undefined) {
    try {
      sameOrigin = new URL(origin).host === req.headers.host;
    } catch {
      sameOrigin = false;
    }
  }
  if (sameOrigin && (site === undefined || site === 'same-origin' || site === 'none')) return undefined;
  return reply.code(403).send({ error: 'cross-site request refused (the Origin is not this listener)' });
}
