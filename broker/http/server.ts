import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { HttpAuth } from '../http-auth.js';

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
    bodyLimit: 10 * 1024 * 1024,
  });
  app.get('/healthz', { onRequest: auth.guardMetrics }, async (_req, reply) => {
    const h = health();
    return reply.code(h.ok ? 200 : 503).send({ status: h.ok ? 'ok' : 'unavailable', ...h.detail });
  });
  app.get('/metrics', { onRequest: auth.guardMetrics }, async (_req, reply) =>
    reply.type(metrics.contentType).send(await metrics.metrics()),
  );
  return app as unknown as FastifyInstance;
}
