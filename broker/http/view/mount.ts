import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { isValidFilter } from '../../auth/topic-filter.js';
import { isRefusal, type HttpAuth, type HttpIdentity } from '../../http-auth.js';
import { loadAssets } from './assets.js';
import { readSinks } from './components.js';
import { CLIENT_SORTS } from './clients.js';
import type { ViewModel } from './model.js';
import { BadQuery, choiceParam, intParam, textParam } from './query.js';
import { ViewStream } from './stream.js';

/**
 * The page may load only its own script and style, talk only to this listener, and not be framed;
 * no inline script (the bundle is one file), so a name that slipped into markup still would not run.
 */
export const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

/** What the viewer must be allowed to read: the broker's own figures. */
const VIEW_FILTER = '$SYS/#';
const MAX_LIMIT = 500;
const MAX_TOPIC_CHARS = 65_535;

/**
 * The web view on the HTTP listener: the page at `/` (assets under `/view/`), its JSON API under
 * `/api/` and the live stream `/api/stream` (docs/webview.md). Every data route needs a broker
 * identity whose ACL lets it read `$SYS/#`; topic names are shown only where its ACL lets it read them.
 */
export function mountView(app: FastifyInstance, auth: HttpAuth, model: ViewModel, log: Logger): { close(): void } {
  const visible = (who: HttpIdentity, topic: string) => auth.allows(who, topic, 'read');
  const stream = new ViewStream(model, visible);
  const assets = loadAssets();
  if ('missing' in assets) log.warn(`web view: ${assets.missing} not found, / answers 503 (run npm run build)`);

  /** The viewer, or undefined once the reply was sent (401, 403). */
  const viewer = async (req: FastifyRequest, reply: FastifyReply): Promise<HttpIdentity | undefined> => {
    const who = await auth.identify(req, { queryToken: true });
    if (isRefusal(who)) {
      auth.challenge(reply.headers(SECURITY_HEADERS), who);
      return undefined;
    }
    if (!auth.allows(who, VIEW_FILTER, 'subscribe')) {
      void reply
        .code(403)
        .headers(SECURITY_HEADERS)
        .send({ error: `the ACL does not let ${who.username === undefined ? 'the anonymous user' : 'this user'} read ${VIEW_FILTER}` });
      return undefined;
    }
    return who;
  };

  /** A data route: identity checked, query errors answered 400, security headers on every answer. */
  const api = (path: string, handler: (q: Record<string, string | string[] | undefined>, who: HttpIdentity) => unknown) =>
    app.get(path, async (req, reply) => {
      const who = await viewer(req, reply);
      if (!who) return reply;
      try {
        const body = handler(req.query as Record<string, string | string[] | undefined>, who);
        return reply.headers(SECURITY_HEADERS).header('cache-control', 'no-store').send(body);
      } catch (err) {
        if (!(err instanceof BadQuery)) throw err;
        return reply.code(400).headers(SECURITY_HEADERS).send({ error: err.message });
      }
    });

  app.get('/', async (req, reply) => {
    if (!(await viewer(req, reply))) return reply;
    if ('missing' in assets)
      return reply.code(503).headers(SECURITY_HEADERS).send({ error: 'the web view was not built: run npm run build (docs/webview.md)' });
    const page = assets.files.get('index.html')!;
    return reply.headers(SECURITY_HEADERS).header('cache-control', 'no-store').type(page.type).send(page.body);
  });
  // code and style only, no data: served without credentials (the browser asks for them on `/`)
  app.get('/view/:name', async (req, reply) => {
    const name = (req.params as { name: string }).name;
    const file = 'missing' in assets || name === 'index.html' ? undefined : assets.files.get(name);
    if (!file) return reply.code(404).headers(SECURITY_HEADERS).send({ error: 'no such asset' });
    return reply.headers(SECURITY_HEADERS).header('cache-control', 'public, max-age=3600').type(file.type).send(file.body);
  });

  api('/api/whoami', (_q, who) => ({ user: who.username ?? null, method: who.method }));

  api('/api/clients', (q) =>
    model.clients.page({
      filter: textParam(q, 'filter', 256),
      sort: choiceParam(q, 'sort', CLIENT_SORTS, 'since'),
      desc: choiceParam(q, 'order', ['asc', 'desc'] as const, 'desc') === 'desc',
      offset: intParam(q, 'offset', 0, 0, 10_000_000),
      limit: intParam(q, 'limit', 50, 1, MAX_LIMIT),
    }),
  );

  api('/api/events', (q) => {
    const id = textParam(q, 'client_id', MAX_TOPIC_CHARS);
    const limit = intParam(q, 'limit', 100, 1, MAX_LIMIT);
    return {
      client_id: id,
      events: model.events
        .toArray()
        .filter((e) => e.client_id === id)
        .slice(-limit),
    };
  });

  api('/api/topics', (q, who) => {
    const prefix = textParam(q, 'prefix', MAX_TOPIC_CHARS);
    if (prefix !== '' && (!isValidFilter(prefix) || /[+#]/.test(prefix) || prefix.includes('\u0000')))
      throw new BadQuery('prefix must be a topic name without wildcards');
    const offset = intParam(q, 'offset', 0, 0, 10_000_000);
    const limit = intParam(q, 'limit', 100, 1, MAX_LIMIT);
    const children = model.topics.children(prefix, (t) => visible(who, t));
    return {
      prefix,
      total: children.length,
      offset,
      children: children.slice(offset, offset + limit),
      tracked: model.topics.size,
      untracked_messages: model.topics.untracked,
      busiest: model.topics.busiest(intParam(q, 'busiest', 10, 0, 100), (t) => visible(who, t)),
    };
  });

  api('/api/alerts', (q) => {
    const after = intParam(q, 'after', 0, 0, Number.MAX_SAFE_INTEGER);
    const limit = intParam(q, 'limit', 100, 1, MAX_LIMIT);
    return { seq: model.alerts.seq, alerts: model.alerts.since(after).slice(-limit) };
  });

  app.get('/api/health', async (req, reply) => {
    const who = await viewer(req, reply);
    if (!who) return reply;
    return reply
      .headers(SECURITY_HEADERS)
      .header('cache-control', 'no-store')
      .send({
        live: model.live,
        history: model.history.toArray(),
        sinks: await readSinks(model.registry),
        beats: model.parts.beats,
        bridges: model.parts.bridges,
        sys: Object.fromEntries([...model.sys].sort(([a], [b]) => a.localeCompare(b))),
        viewers: stream.size,
      });
  });

  app.get('/api/stream', async (req, reply) => {
    const who = await viewer(req, reply);
    if (!who) return reply;
    if (stream.full() || req.raw.destroyed)
      return reply.code(503).header('retry-after', '10').headers(SECURITY_HEADERS).send({ error: 'too many open views' });
    reply.hijack();
    stream.open(reply.raw, who, SECURITY_HEADERS);
    return reply;
  });

  model.start();
  return {
    close() {
      stream.close();
      model.stop();
    },
  };
}
