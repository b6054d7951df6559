import write from './write.js'
import { ownList } from './lazy-state.js'

// [MQTT-3.3.4-9] The server must not send an MQTT 5 client more unacknowledged
// QoS 1/2 PUBLISH packets than the Receive Maximum of its CONNECT. Beyond it a
// PUBLISH waits in the client's queue (a persistent session has it in its
// stored outgoing messages too) and goes out as a PUBACK or PUBCOMP (or a
// failing PUBREC) ends an earlier one. A resumed session's stored messages
// count as they are sent again.

function counted (client, packet) {
  return client.version === 5 && packet.cmd === 'publish' && packet.qos > 0
}

export function sendWithinWindow (client, packet, done) {
  if (!counted(client, packet)) return write(client, packet, done)
  if (client._outInflight >= client.receiveMaximum) {
    ownList(client, '_outWaiting').push(packet)
    return done()
  }
  client._outInflight++
  write(client, packet, done)
}

export function acknowledged (client) {
  if (client.version !== 5) return
  if (client._outInflight > 0) client._outInflight--
  while (client._outWaiting.length > 0 && client._outInflight < client.receiveMaximum) {
    client._outInflight++
    write(client, client._outWaiting.shift(), (err) => {
      if (err) client.emit('error', err)
    })
  }
}
