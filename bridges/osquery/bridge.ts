import { readFile } from 'node:fs/promises';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Bridge, BridgeContext, BeatRecord, CommonBeatConfig } from '../contract.js';
import { readSecretFile } from '../shared/secret-file.js';
import { osqueryResultRows, osqueryStatus, OsqueryLogError, type OsqueryResultRow, type OsqueryStatus } from '../shared/osquery-log.js';
import { topicPath } from '../shared/topic.js';
import { resultRecord } from '../fleet/index.js';
import type { OsqueryConfig, OsqueryEndpoint } from './config.js';
import { agentConfig } from './agent-config.js';
import { NodeRegistry, EnrollError, type EnrolledNode } from './nodes.js';
import { BodyError, decodeBody } from './body.js';
import { DistributedQueue, parseQueryCommand, QueryCommandError } from './distributed.js';
import { isJsonObject } from '../shared/json-object.js';
import { JsonDepthError, parseBoundedJson } from '../../broker/bounded-json.js';

/** Path prefixes the endpoints answer under: osquery's examples use `/`, many servers `/v1/`, Fleet `/api/v1/osquery/`. */
const PREFIXES = ['', '/v1', '/api/v1/osquery', '/api/osquery'];

type Body = Record<string, unknown>;

/** A request the beat refuses after decoding: 400 with this message; nothing is published. */
class RequestError extends Error {}

/**
 * osquery's TLS remote API on the beat's own HTTPS listener: enrollment, config, result and status
 * logs (out on `beats/osquery/result/<query>` and `status/<host>`), and distributed queries ordered on
 * `beats/osquery/query` with results on `beats/osquery/distributed/<id>`.
 */
export class OsqueryBridge implements Bridge {
  private app?: FastifyInstance;
  private unsubscribe?: () => Promise<void>;
  private readonly queue: DistributedQueue;

  constructor(
    private readonly cfg: OsqueryConfig,
    private readonly common: CommonBeatConfig,
  ) {
    this.queue = new DistributedQueue(cfg.queryTtlMs);
  }

  async start(ctx: BridgeContext): Promise<void> {
    const secret = await readSecretFile(this.cfg.enrollSecretFile!, 'osquery_enroll_secret_file');
    const [cert, key] = await Promise.all([readFile(this.cfg.certfile!), readFile(this.cfg.keyfile!)]);
    const nodes = new NodeRegistry(ctx.store, secret);
    const app = Fastify({ https: { cert, key }, bodyLimit: this.cfg.maxBodyBytes, logger: false });
    app.removeAllContentTypeParsers();
    // bodies are decoded by decodeBody (gzip, size cap, JSON), whatever content type the agent sends
    app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
    app.setErrorHandler((err: { statusCode?: number; message: string }, _req, reply) => {
      const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
      if (status === 500) ctx.log.error({ err }, 'osquery request failed');
      void reply.code(status).send({ error: status === 500 ? 'internal error' : err.message });
    });

    const route = (
      path: string,
      endpoint: OsqueryEndpoint,
      handle: (body: Body, node: EnrolledNode | undefined, from: string) => Promise<unknown>,
      enroll = false,
    ) => {
      const handler = async (req: FastifyRequest, reply: FastifyReply) => {
        let body: Body;
        try {
          body = decodeBody(Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0), req.headers['content-encoding'], this.cfg.maxBodyBytes);
        } catch (err) {
          if (!(err instanceof BodyError)) throw err;
          return reply.code(err.status).send({ error: err.message });
        }
        let node: EnrolledNode | undefined;
        if (!enroll) {
          node = await nodes.checkIn(body.node_key);
          if (!node) return reply.code(401).send({ node_invalid: true, error: 'invalid node key' });
        }
        try {
          return await handle(body, node, req.ip);
        } catch (err) {
          if (err instanceof EnrollError) return reply.code(401).send({ node_invalid: true, error: err.message });
          if (err instanceof RequestError || err instanceof OsqueryLogError) return reply.code(400).send({ error: err.message });
          throw err;
        }
      };
      for (const p of PREFIXES) app.post(`${p}${path}`, handler);
      const builtIn = PREFIXES.map((p) => `${p}${path}`);
      for (const extra of this.cfg.endpoints[endpoint] ?? []) if (!builtIn.includes(extra)) app.post(extra, handler);
    };

    route(
      '/enroll',
      'enroll',
      async (body, _node, from) => {
        const nodeKey = await nodes.enroll(body.enroll_secret, body.host_identifier, body.host_details);
        ctx.log.info({ host: body.host_identifier }, 'osquery node enrolled');
        await ctx.emit(enrolledRecord(body.host_identifier as string, from, body.host_details));
        return { node_key: nodeKey, node_invalid: false };
      },
      true,
    );
    route('/config', 'config', async (_body, node) => ({
      ...(await agentConfig(this.cfg.configFile, this.cfg.hostConfigDir, node!.hostIdentifier)),
      node_invalid: false,
    }));
    route('/log', 'logger', async (body, node) => {
      const records = logRecords(body, node!);
      await Promise.all(records.map((r) => ctx.emit(r)));
      return { node_invalid: false };
    });
    route('/distributed/read', 'distributed_read', async (_body, node) => ({
      queries: this.queue.read(node!.hostIdentifier),
      node_invalid: false,
    }));
    route('/distributed/write', 'distributed_write', async (body, node) => {
      const records = distributedRecords(body, node!, (id) => this.queue.acceptResult(id, node!.hostIdentifier));
      await Promise.all(records.map((r) => ctx.emit(r)));
      return { node_invalid: false };
    });

    this.unsubscribe = await ctx.subscribe(`${this.common.topicPrefix}/query`, (_topic, payload, publisher) => {
      try {
        const cmd = parseQueryCommand(payload);
        const id = this.queue.add(cmd);
        ctx.log.info({ queryId: id, publisher: publisher.clientId }, 'osquery distributed query queued');
        void ctx.emit({ subtopic: 'query/accepted', data: { id, sql: cmd.sql, hosts: cmd.hosts, clientId: publisher.clientId } });
      } catch (err) {
        if (!(err instanceof QueryCommandError)) throw err;
        void ctx.emit({ subtopic: 'query/rejected', data: { error: err.message, clientId: publisher.clientId } });
      }
    });

    await app.listen({ port: this.cfg.port!, host: this.cfg.host });
    this.app = app;
    ctx.log.info({ port: this.cfg.port, host: this.cfg.host }, 'osquery TLS endpoint listening');
  }

  async stop(): Promise<void> {
    await this.unsubscribe?.();
    await this.app?.close();
  }
}

/** The records of one `/log` request; throws (nothing published) if any entry is malformed. */
function logRecords(body: Body, node: EnrolledNode): BeatRecord[] {
  if (body.log_type !== 'result' && body.log_type !== 'status') throw new RequestError('log_type must be result or status');
  if (!Array.isArray(body.data)) throw new RequestError('data must be an array');
  const objects = body.data.map((entry: unknown) => {
    // osquery sends each log line as an object; some versions send the line as a JSON string
    const obj = typeof entry === 'string' ? safeParse(entry) : entry;
    if (!isJsonObject(obj)) throw new RequestError('a data entry is not a JSON object');
    return obj as Body;
  });
  if (body.log_type === 'result') {
    return objects
      .flatMap((o) => osqueryResultRows(o))
      .map((row: OsqueryResultRow) => resultRecord({ ...row, hostIdentifier: row.hostIdentifier ?? node.hostIdentifier }));
  }
  return objects.map((o) => {
    const status = osqueryStatus(o);
    return statusRecord({ ...status, hostIdentifier: status.hostIdentifier ?? node.hostIdentifier });
  });
}

function safeParse(text: string): unknown {
  try {
    return parseBoundedJson(text);
  } catch (err) {
    if (err instanceof JsonDepthError) throw new RequestError(`a data entry is ${err.message}`);
    throw new RequestError('a data entry is not valid JSON');
  }
}

/**
 * `enrolled/<host>`: which host enrolled from which address (the correlator knows a host by it), with
 * the host name and UUID osquery reports in `host_details.system_info`; nothing else of the details.
 */
function enrolledRecord(host: string, address: string, details: unknown): BeatRecord {
  const info = isJsonObject(details) && isJsonObject(details.system_info) ? details.system_info : {};
  const text = (v: unknown) => (typeof v === 'string' && v !== '' ? v.slice(0, 256) : undefined);
  return {
    subtopic: `enrolled/${topicPath(host)}`,
    data: { hostIdentifier: host, address, hostname: text(info.hostname), uuid: text(info.uuid), '@timestamp': new Date().toISOString() },
    entity: { type: 'OsqueryNode', id: host },
  };
}

function statusRecord(status: OsqueryStatus): BeatRecord {
  const host = status.hostIdentifier ?? 'unknown-host';
  return {
    subtopic: `status/${topicPath(host)}`,
    data: status,
    time: status['@timestamp'] !== undefined ? Date.parse(status['@timestamp']) : undefined,
    entity: { type: 'OsqueryStatus', id: host },
  };
}

/** One record per answered query this host was handed; results for other ids are dropped. */
function distributedRecords(body: Body, node: EnrolledNode, accept: (id: string) => boolean): BeatRecord[] {
  const queries = objectField(body, 'queries');
  const statuses = objectField(body, 'statuses');
  const messages = objectField(body, 'messages');
  for (const rows of Object.values(queries)) {
    if (!Array.isArray(rows) || !rows.every((r) => r !== null && typeof r === 'object' && !Array.isArray(r)))
      throw new RequestError('queries must map query ids to arrays of row objects');
  }
  const ids = new Set([...Object.keys(queries), ...Object.keys(statuses)]);
  const records: BeatRecord[] = [];
  for (const id of ids) {
    if (!accept(id)) continue;
    const status = Number(statuses[id] ?? 0);
    const message = typeof messages[id] === 'string' ? messages[id] : undefined;
    records.push({
      subtopic: `distributed/${topicPath(id)}`,
      data: {
        queryId: id,
        hostIdentifier: node.hostIdentifier,
        status,
        ...(message ? { message } : {}),
        rows: (queries[id] as Body[] | undefined) ?? [],
      },
      entity: { type: 'OsqueryDistributedResult', id: `${id}:${node.hostIdentifier}` },
    });
  }
  return records;
}

function objectField(body: Body, key: string): Body {
  const v = body[key];
  if (v === undefined) return {};
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new RequestError(`${key} must be an object`);
  return v as Body;
}
