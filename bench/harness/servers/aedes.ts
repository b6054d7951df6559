/**
 * Bare Aedes (the version mqprobe is built on, from node_modules) on a plain TCP server: the floor
 * mqprobe adds its features to. Usage: node aedes.js <port>
 */
import { createServer } from 'node:net';
import { Aedes } from 'aedes';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  process.stderr.write('usage: aedes <port>\n');
  process.exit(2);
}
const aedes = await Aedes.createBroker();
const server = createServer((socket) => aedes.handle(socket));
server.listen(port, '127.0.0.1');
process.on('SIGTERM', () => server.close(() => aedes.close(() => process.exit(0))));
