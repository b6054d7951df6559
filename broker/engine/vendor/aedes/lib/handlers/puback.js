import { acknowledged } from '../outbound-window.js'

// PUBACK and PUBCOMP: the end of an outbound QoS 1 / QoS 2 delivery
function handlePuback (client, packet, done) {
  acknowledged(client)
  const persistence = client.broker.persistence
  const emitAck = (err, origPacket) => {
    client.broker.emit('ack', origPacket, client)
    done(err)
  }
  persistence.outgoingClearMessageId(client, packet)
    .then((packet) => emitAck(null, packet), emitAck)
}

export default handlePuback
