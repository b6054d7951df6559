import { runSeries, ackProperties, topicLevelCount } from '../utils.js'
import write from '../write.js'
import { ReasonCodes } from '../constants.js'
import { ownInboundInflight, ownTopicAliases } from '../lazy-state.js'

class PubAck {
  constructor (packet) {
    this.cmd = 'puback'
    this.messageId = packet.messageId
  }
}

class PubRec {
  constructor (packet) {
    this.cmd = 'pubrec'
    this.messageId = packet.messageId
  }
}

const publishActions = [
  authorizePublish,
  enqueuePublish
]
function handlePublish (client, packet, done) {
  // MQTT 5.0: resolve an inbound Topic Alias to its topic (and strip the
  // alias so it is not forwarded to subscribers) before topic validation.
  if (client.version === 5 && packet.properties?.topicAlias !== undefined) {
    const err = resolveTopicAlias(client, packet)
    if (err) {
      // Topic Alias protocol violation: surface the detail for telemetry, then
      // tell the client with a 0x94 (Topic Alias invalid) DISCONNECT — an
      // observable reason code on the wire rather than a bare connection drop.
      // The disconnect is authoritative: it closes the connection (detaching the
      // reader), so finishing the batch with done() — not done(err) — is correct;
      // no further packets on this batch will be processed.
      client.broker.emit('clientError', client, err)
      client.disconnect({ reasonCode: ReasonCodes.TOPIC_ALIAS_INVALID }, () => done())
      return
    }
  }
  if (client.version === 5) {
    // [MQTT-3.2.2-11], [MQTT-3.2.2-14]: what the CONNACK said is unavailable
    const reasonCode = packet.qos > client.broker.maximumQoS
      ? ReasonCodes.QOS_NOT_SUPPORTED
      : packet.retain && !client.broker.retainAvailable ? ReasonCodes.RETAIN_NOT_SUPPORTED : undefined
    if (reasonCode !== undefined) {
      client.broker.emit('clientError', client, new Error(reasonCode === ReasonCodes.QOS_NOT_SUPPORTED ? 'QoS not supported' : 'retain not supported'))
      client.disconnect({ reasonCode }, () => done())
      return
    }
  }
  const topic = packet.topic
  let err
  if (topic.length === 0) {
    err = new Error('empty topic not allowed in PUBLISH')
    return done(err)
  }
  if (topic.indexOf('#') > -1) {
    err = new Error('# is not allowed in PUBLISH')
    return done(err)
  }
  if (topic.indexOf('+') > -1) {
    err = new Error('+ is not allowed in PUBLISH')
    return done(err)
  }
  // [MQTT-3.3.2-14] The MQTT 5.0 Response Topic must be a publish topic name, so
  // it must not contain wildcard characters.
  const responseTopic = packet.properties?.responseTopic
  if (responseTopic !== undefined && (responseTopic.indexOf('#') > -1 || responseTopic.indexOf('+') > -1)) {
    return done(new Error('wildcard is not allowed in Response Topic'))
  }
  // reject deeply nested topics before any ack/persistence side-effect; see
  // lib/utils.js#topicLevelCount. broker.publish guards the will/API paths.
  if (topicLevelCount(topic) > client.broker.maxTopicLevels) {
    err = new Error('topic has too many levels')
    return done(err)
  }
  runSeries(client, publishActions, packet, done)
}

function enqueuePublish (packet, done) {
  const client = this

  // MQTT 5.0: an unauthorized QoS > 0 publish was already answered with a
  // 0x87 (Not authorized) PUBACK/PUBREC in authorizePublish; do not publish it.
  if (packet._notAuthorized) {
    return done()
  }

  switch (packet.qos) {
    case 2:
      // MQTT-4.3.3-2: Check if we already have this packet by messageId
      client.broker.persistence.incomingGetPacket(client, packet)
        .then(() => {
          // Duplicate packet: just send PUBREC, don't publish again
          write(client, new PubRec(packet), done)
        }, () => {
          // New packet (not found in store): bound the inbound QoS 2 window
          // before storing it, so a client that keeps sending fresh ids while
          // withholding PUBREL cannot grow its incoming store without limit.
          // The slot is reserved synchronously (a read chunk is dispatched
          // concurrently) and keyed by messageId.
          const inflight = ownInboundInflight(client)
          // the same id already taken on this connection and awaiting PUBREL: a
          // retransmission that arrived before the first was stored [MQTT-4.3.3-10]
          if (inflight.has(packet.messageId)) return write(client, new PubRec(packet), done)
          const limit = inboundLimit(client)
          if (limit > 0 && inflight.size >= limit) {
            const err = new Error('maxInflightInbound exceeded: ' + limit + ' inbound QoS 2 messages already awaiting PUBREL')
            if (client.version === 5) {
              // [MQTT-3.3.4-7] Receive Maximum exceeded: say so (0x93), then close
              client.broker.emit('clientError', client, err)
              client.disconnect({ reasonCode: ReasonCodes.RECEIVE_MAXIMUM_EXCEEDED }, () => done())
              return
            }
            // MQTT 3.1/3.1.1 has no reason code to carry: drop the connection
            return done(err)
          }
          inflight.add(packet.messageId)
          // store first, then publish: if storage fails, the message has not
          // been delivered yet, preventing duplicate delivery on retransmission
          client.broker.persistence.incomingStorePacket(client, packet)
            .then(() => {
              client.broker.publish(packet, client, (err) => {
                if (err) { return done(err) }
                write(client, new PubRec(packet), done)
              })
            }, (err) => {
              // nothing was stored, so the slot goes back
              inflight.delete(packet.messageId)
              done(err)
            })
        })
      break
    case 1:
      write(client, new PubAck(packet), function (err) {
        if (err) { return done(err) }
        client.broker.publish(packet, client, done)
      })
      break
    case 0:
      client.broker.publish(packet, client, done)
      break
    default:
      // nothing to do
  }
}

// v5: the Receive Maximum the broker advertised; otherwise maxInflightInbound
function inboundLimit (client) {
  const broker = client.broker
  return client.version === 5 && broker.receiveMaximum > 0 ? broker.receiveMaximum : broker.maxInflightInbound
}

function authorizePublish (packet, done) {
  const client = this
  // v3/v4 have no reason-code handling here, so pass `done` straight through —
  // no per-message wrapper closure on the broker's busiest path.
  if (client.version !== 5) {
    return client.broker.authorizePublish(client, packet, done)
  }
  client.broker.authorizePublish(client, packet, function (err) {
    if (!err) {
      return done()
    }
    // MQTT 5.0: rather than dropping the connection on an authz failure, keep
    // it up and drop the message. A QoS > 0 publish is answered with a 0x87
    // (Not authorized) PUBACK/PUBREC; a QoS 0 publish has no acknowledgement to
    // carry a reason code, so it is dropped silently. Either way the failure is
    // surfaced on clientError for telemetry (v3/v4 instead take the done(err)
    // fast path above, which closes the connection).
    packet._notAuthorized = true
    client.broker.emit('clientError', client, err)
    if (packet.qos > 0) {
      const ack = packet.qos === 1 ? new PubAck(packet) : new PubRec(packet)
      ack.reasonCode = ReasonCodes.NOT_AUTHORIZED
      // [#823] Reason String, sourced from the authorization error and gated by
      // the client's Request Problem Information.
      const properties = ackProperties(client, err.message)
      if (properties) ack.properties = properties
      write(client, ack, () => done())
    } else {
      done()
    }
  })
}

// Resolves an MQTT 5.0 inbound Topic Alias. A PUBLISH that carries a non-empty
// topic together with an alias registers (or updates) the mapping; a PUBLISH
// with an empty topic resolves the topic from a previously registered alias.
// The alias is connection-scoped, so it is removed from the packet before the
// message is forwarded to subscribers. [MQTT-3.3.2-7..3.3.2-13]
function resolveTopicAlias (client, packet) {
  const alias = packet.properties.topicAlias
  const max = client.broker.topicAliasMaximum
  if (alias < 1 || alias > max) {
    return new Error(`topic alias ${alias} is out of range (broker topicAliasMaximum is ${max})`)
  }

  if (packet.topic.length > 0) {
    // Only register a topic the later PUBLISH validation will accept — never
    // store a wildcard/invalid topic in the connection's alias map. An invalid
    // topic still falls through to handlePublish's checks, which reject it.
    if (packet.topic.indexOf('#') === -1 && packet.topic.indexOf('+') === -1) {
      ownTopicAliases(client).set(alias, packet.topic)
    }
  } else {
    const topic = client._topicAliases?.get(alias)
    if (topic === undefined) {
      return new Error(`unknown topic alias ${alias}`)
    }
    packet.topic = topic
  }

  // Strip the connection-scoped alias before the packet is forwarded: a copy of
  // the properties without it (one allocation per aliased publish). Assigning
  // `undefined` instead leaves the key in place, and an emitter that serializes
  // the packet (mqemitter-redis, msgpack) turns it into null, which mqtt-packet
  // refuses to write to every subscriber, closing them all.
  const { topicAlias, ...forwarded } = packet.properties
  packet.properties = forwarded
  return null
}

export default handlePublish
