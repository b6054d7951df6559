import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isRefusal, type HttpAuth } from '../../broker/http-auth.js';
import { parseEntity, type BanList } from './bans.js';

/** `ip 10.0.0.7` or `ip:10.0.0.7` (friendlier in a URL) → the entity, or undefined. */
export function entityFromPath(raw: string): string | undefined {
  const m = /^(ip|client|user)[ :](.+)$/s.exec(raw);
  const entity = m ? `${m[1]} ${m[2]}` : undefined;
  return entity && parseEntity(entity) && entity.length <= 65_536 ? entity : undefined;
}

/**
 * `GET /bans` and `DELETE /bans/<entity>` on the HTTP listener: the caller logs in as a broker
 * user (Basic, or a `http_token_file` token) named by `detect_admin_user`; anyone else gets 403.
 */
export function registerBanRoutes(http: FastifyInstance, auth: HttpAuth, bans: BanList, admins: readonly string[]): void {
  const guard = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    const who = await auth.identify(req, { queryToken: false });
    if (isRefusal(who)) {
      auth.challenge(reply, who);
      return reply;
    }
    if (who.username === undefined || !admins.includes(who.username))
      return reply
        .code(403)
        .send({ error: admins.length ? 'only a detect_admin_user may manage bans' : 'no detect_admin_user is configured' });
    return undefined;
  };
  http.get('/bans', { onRequest: guard }, async () => ({ count: bans.size, bans: bans.list() }));
  http.delete<{ Params: { entity: string } }>('/bans/:entity', { onRequest: guard }, async (req, reply) => {
    const entity = entityFromPath(req.params.entity);
    if (!entity) return reply.code(400).send({ error: 'expected ip <address>, client <id> or user <name> (or ip:<address>, …)' });
    if (!(await bans.remove(entity))) return reply.code(404).send({ error: `no ban of ${entity}` });
    return { lifted: entity };
  });
}
