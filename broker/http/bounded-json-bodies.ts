import type { FastifyInstance } from 'fastify';
import { JSON_MAX_DEPTH, JsonDepthError, jsonDepthExceeds } from '../bounded-json.js';

/**
 * Fastify's own JSON body parser (secure-json-parse: a `__proto__` key is refused, `constructor`
 * as `constructorAction` says) behind the nesting limit of broker/bounded-json.ts, for each of
 * `types`: a body nested deeper than 1,000 levels is a 400 before it is parsed. Replaces the
 * default `application/json` parser when `types` names it.
 */
export function parseJsonBodiesBounded(
  app: FastifyInstance,
  types: readonly string[] = ['application/json'],
  constructorAction: 'error' | 'ignore' = 'error',
): void {
  const secure = app.getDefaultJsonParser('error', constructorAction);
  if (types.includes('application/json')) app.removeContentTypeParser('application/json');
  for (const type of types)
    app.addContentTypeParser(type, { parseAs: 'string' }, (req, body, done) => {
      if (jsonDepthExceeds(body as string, JSON_MAX_DEPTH))
        return done(Object.assign(new JsonDepthError(JSON_MAX_DEPTH), { statusCode: 400 }), undefined);
      secure(req, body as string, done);
    });
}
