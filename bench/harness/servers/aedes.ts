/**
 * Bare Aedes (the version mqprobe is built on, from node_modules) on a plain TCP server: the floor
 * mqprobe adds its features to. Usage: node aedes.js <port> [aedes package folder] [options JSON]
 * The folder (bench/engine/ and test/engine/ pass one; '' is node_modules) runs another Aedes, e.g.
 * an installed 2.0 beta, and the options go to createBroker, for the engine evaluation; with
 * `"redis": "redis://…"` among them, state goes through aedes-persistence-redis and mqemitter-redis
 * (mqprobe's versions, from node_modules).
 */
import { createServer } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

type AedesModule = typeof import('aedes');

const port = Number(process.argv[2]);
const folder = process.argv[3];
const { redis, ...options } = JSON.parse(process.argv[4] ?? '{}') as Record<string, unknown> & { redis?: string };
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  process.stderr.write('usage: aedes <port> [aedes package folder] [options JSON]\n');
  process.exit(2);
}
const { Aedes } = (await (folder ? import(pathToFileURL(join(folder, 'aedes.js')).href) : import('aedes'))) as AedesModule;
if (redis) {
  const { default: persistence } = await import('aedes-persistence-redis');
  const { default: mqemitter } = await import('mqemitter-redis');
  const { Redis } = await import('ioredis');
  Object.assign(options, {
    persistence: persistence({ conn: new Redis(redis), maxSessionDelivery: -1 }),
    mq: mqemitter({ connectionString: redis }),
  });
}
const aedes = await Aedes.createBroker(options);
// what the engine refused and why, for the engine evaluation's logs (never on the bench's hot path)
aedes.on('clientError', (client, err) => process.stderr.write(`clientError ${client.id}: ${err.message}\n`));
aedes.on('connectionError', (_client, err) => process.stderr.write(`connectionError: ${err.message}\n`));
const server = createServer((socket) => aedes.handle(socket));
server.listen(port, '127.0.0.1');
process.on('SIGTERM', () => server.close(() => aedes.close(() => process.exit(0))));
