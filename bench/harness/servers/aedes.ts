/**
 * Bare Aedes (the version mqprobe is built on, from node_modules) on a plain TCP server: the floor
 * mqprobe adds its features to. Usage: node aedes.js <port> [aedes package folder]
 * The folder (bench/engine/ passes one) runs another Aedes, e.g. an unpacked 2.0 beta, for the
 * engine evaluation.
 */
import { createServer } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

type AedesModule = typeof import('aedes');

const port = Number(process.argv[2]);
const folder = process.argv[3];
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  process.stderr.write('usage: aedes <port> [aedes package folder]\n');
  process.exit(2);
}
const { Aedes } = (await (folder ? import(pathToFileURL(join(folder, 'aedes.js')).href) : import('aedes'))) as AedesModule;
const aedes = await Aedes.createBroker();
const server = createServer((socket) => aedes.handle(socket));
server.listen(port, '127.0.0.1');
process.on('SIGTERM', () => server.close(() => aedes.close(() => process.exit(0))));
