/**
 * A minimal json_lines TCP receiver for the benchmark (a separate process, like Logstash would be):
 * counts lines and bytes, prints its port on start and its counts when stdin says "report".
 */
import net from 'node:net';

let lines = 0;
let bytes = 0;
const server = net.createServer((s) => {
  s.on('data', (d: Buffer) => {
    bytes += d.length;
    for (let i = d.indexOf(10); i !== -1; i = d.indexOf(10, i + 1)) lines++;
  });
  s.on('error', () => {});
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as net.AddressInfo).port })}\n`);
});
process.stdin.on('data', (d) => {
  if (d.toString().includes('report')) process.stdout.write(`${JSON.stringify({ lines, bytes })}\n`);
});
process.stdin.on('end', () => process.exit(0));
