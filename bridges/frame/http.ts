import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { isRefusal, type HttpAuth } from '../../broker/http-auth.js';
import { parseJsonBodiesBounded } from '../../broker/http/bounded-json-bodies.js';

const METHODS = ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT', 'OPTIONS'] as const;

/**
 * Beat routes on the broker's HTTP listener. Fastify takes no routes once it listens, and a beat
 * registers its routes when it starts (again after every restart), so the listener gets one route,
 * `/beats/*`, before it listens; each running beat gets its own Fastify instance (never listening)
 * with its routes under `/beats/<name>`, and requests are handed to it raw, before any body parsing.
 *
 * Every request is a broker identity's, as on /sse (HTTP Basic, a bearer token, or anonymous where
 * allow_anonymous allows it), and the ACL decides: the identity needs the right to publish to the
 * beat's topic tree (`beat_topic_prefix`, checked as a PUBLISH to the prefix itself, which `prefix/#`
 * covers), since what it sends or asks is the beat's to publish. Refusals come before the beat is
 * looked up, so an unknown caller learns nothing of which beats run.
 */
export class BeatHttp {
  private readonly apps = new Map<string, { app: FastifyInstance; topicRoot: string }>();

  constructor(main: FastifyInstance, auth: HttpAuth) {
    main.route({
      method: [...METHODS],
      url: '/beats/*',
      onRequest: async (req, reply) => {
        const who = await auth.identify(req, { queryToken: false });
        if (isRefusal(who)) {
          auth.challenge(reply, who);
          return reply;
        }
        const name = req.url.split('?')[0].split('/')[2] ?? '';
        const beat = this.apps.get(name);
        if (!beat) return reply.code(404).send({ error: `no running beat "${name.slice(0, 64)}" serves HTTP` });
        if (!auth.allows(who, beat.topicRoot, 'write')) {
          auth.report(req, 403, 'forbidden-topic', who.username);
          return reply.code(403).send({
            error: `the ACL does not let ${who.username === undefined ? 'the anonymous user' : `user "${who.username.slice(0, 200)}"`} publish to ${beat.topicRoot}/#`,
          });
        }
        if (req.raw.destroyed) return reply; // gone while its password was checked
        const app = beat.app;
        reply.hijack();
        app.routing(req.raw, reply.raw);
        return reply;
      },
      handler: async (_req, reply) => reply.code(404).send(),
    });
  }

  /** Mounts a beat's routes under `/beats/<name>`, for identities that may publish to `topicRoot`; the returned function removes them. */
  async mount(
    name: string,
    topicRoot: string,
    log: Logger,
    register: (app: FastifyInstance) => void | Promise<void>,
  ): Promise<() => Promise<void>> {
    if (this.apps.has(name)) throw new Error(`beat ${name} registered its HTTP routes twice`);
    const app = Fastify({
      loggerInstance: log,
      logController: new LogController({ disableRequestLogging: true }),
      bodyLimit: 10 * 1024 * 1024,
    }) as unknown as FastifyInstance;
    parseJsonBodiesBounded(app);
    await app.register(async (scoped) => register(scoped), { prefix: `/beats/${name}` });
    await app.ready();
    this.apps.set(name, { app, topicRoot });
    return async () => {
      if (this.apps.get(name)?.app === app) this.apps.delete(name);
      await app.close();
    };
  }
}
