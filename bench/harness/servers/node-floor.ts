/**
 * The Node floor: a bare Node TCP server that holds the same sockets an MQTT broker would and
 * answers each CONNECT with a fixed CONNACK, nothing else (no parser, no state per client). What
 * any Node broker pays per idle connection before its own objects: the socket handle, its stream
 * state and the kernel buffers. Scenarios D and E-anonymous only. Usage: node node-floor.js <port>
 */
import { createServer } from 'node:net';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  process.stderr.write('usage: node-floor <port>\n');
  process.exit(2);
}
// CONNACK, session present 0, return code 0 (accepted); shared by every socket
const CONNACK = Buffer.from([0x20, 0x02, 0x00, 0x00]);
const server = createServer((socket) => {
  // the first bytes are the client's CONNECT: answer once, then read and drop whatever follows
  socket.once('data', () => socket.write(CONNACK));
  socket.on('data', () => {});
  socket.on('error', () => socket.destroy());
});
server.listen(port, '127.0.0.1');
// no graceful close: server.close would wait for every held socket
process.on('SIGTERM', () => process.exit(0));
