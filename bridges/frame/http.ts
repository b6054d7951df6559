import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';

const METHODS = ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT', 'OPTIONS'] as const;

/**
 * Beat routes on the broker's HTTP listener. Fastify takes no routes once it listens, and a beat
 * registers its routes when it starts (again after every restart), so the listener gets one route,
 * `/beats/*`, before it listens; each running beat gets its own Fastify instance (never listening)
 * with its routes under `/beats/<name>`, and requests are handed to it raw, before any body parsing.
 */
export class BeatHttp {
  private readonly apps = new Map<string, FastifyInstance>();

  constructor(main: FastifyInstance) {
    main.route({
      method: [...METHODS],
      url: '/beats/*',
      onRequest: async (req, reply) => {
        const name = req.url.split('?')[0].split('/')[2] ?? '';
        const app = this.apps.get(name);
        if (!app) return reply.code(404).send({ error: `no running beat "${name.slice(0, 64)}" serves HTTP` });
        reply.hijack();
        app.routing(req.raw, reply.raw);
        return reply;
      },
      handler: async (_req, reply) => reply.code(404).send(),
    });
  }

  /** Mounts a beat's routes under `/beats/<name>`; the returned function removes them. */
  async mount(name: string, log: Logger, register: (app: FastifyInstance) => void | Promise<void>): Promise<() => Promise<void>> {
    if (this.apps.has(name)) throw new Error(`beat ${name} registered its HTTP routes twice`);
    const app = Fastify({
      loggerInstance: log,
      logController: new LogController({ disableRequestLogging: true }),
      bodyLimit: 10 * 1024 * 1024,
    }) as unknown as FastifyInstance;
    await app.register(async (scoped) => register(scoped), { prefix: `/beats/${name}` });
    await app.ready();
    this.apps.set(name, app);
    return async () => {
      if (this.apps.get(name) === app) this.apps.delete(name);
      await app.close();
    };
  }
}
