import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';

/**
 * The HTTP side-server (`http_listener`): /healthz and /metrics here; SSE and bridge
 * endpoints register their own routes on the same instance.
 */
export function createHttpServer(log: Logger, metrics: Registry, health: () => { ok: boolean; detail: Record<string, unknown> }): FastifyInstance {
  const app = Fastify({ loggerInstance: log.child({ name: 'http' }), logController: new LogController({ disableRequestLogging: true }), bodyLimit: 10 * 1024 * 1024 });
  app.get('/healthz', async (_req, reply) => {
    const h = health();
    return reply.code(h.ok ? 200 : 503).send({ status: h.ok ? 'ok' : 'unavailable', ...h.detail });
  });
  app.get('/metrics', async (_req, reply) => reply.type(metrics.contentType).send(await metrics.metrics()));
  return app as unknown as FastifyInstance;
}
