// [MQTT-4.6.0-6] A resumed session's stored messages (emptyQueue in
// handlers/connect.js) are read and sent one by one, asynchronously; a QoS 1/2
// message published meanwhile would otherwise go out at once, ahead of the
// stored ones still unsent. While the stored queue is being walked, such live
// deliveries wait here, in arrival order, and are sent when the walk ends. A
// persistent session's live message is stored before it is routed: one stored
// just before the walk read the queue is sent by the walk, and its routed copy
// (same broker id and counter) is skipped.

const key = (packet) => `${packet.brokerId}:${packet.brokerCounter}`

export function startQueueWalk (client) {
  client._queueWalk = { held: [], walked: new Set() }
}

export function walked (client, packet) {
  if (packet.brokerId) client._queueWalk.walked.add(key(packet))
}

// true when the delivery waits behind the walk (its callback is then called
// at once, as for one queued beyond the Receive Maximum: the broker goes on)
export function heldBehindQueue (client, packet) {
  if (client._queueWalk === null) return false
  client._queueWalk.held.push(packet)
  return true
}

// sends the held deliveries one after another (those arriving meanwhile join
// the end), then ends the walk
export function endQueueWalk (client, send, done) {
  const walk = client._queueWalk
  function next () {
    const packet = walk.held.shift()
    if (packet === undefined) {
      client._queueWalk = null
      return done()
    }
    if (walk.walked.has(key(packet))) return next()
    send(packet, next)
  }
  next()
}
