import mqtt from 'mqtt-packet'
import EventEmitter from 'node:events'
import util from 'util'
import Packet from 'aedes-packet'
import write from './write.js'
import QoSPacket from './qos-packet.js'
import { sendWithinWindow } from './outbound-window.js'
import { heldBehindQueue } from './resume-order.js'
import handleSubscribe from './handlers/subscribe.js'
import handleUnsubscribe from './handlers/unsubscribe.js'
import handle from './handlers/index.js'
import { pipeline } from 'stream'
import { through, packetWireSize } from './utils.js'
import { NO_SUBSCRIPTIONS, NO_ITEMS, ownDuplicates, ownList } from './lazy-state.js'
import { stopKeepAlive } from './keepalive.js'
import { ReasonCodes } from './constants.js'

class Client {
  constructor (broker, conn, req) {
    const that = this

    // metadata
    this.closed = false
    this.connecting = false
    this.connected = false
    this.connackSent = false
    this.errored = false

    // mqtt params
    this.id = null
    this.clean = true
    this.version = null
    // Wire version used by write() for outbound serialization; cached at CONNECT.
    this._wireVersion = null
    // MQTT 5.0 Session Expiry Interval (seconds); set from CONNECT on connect.
    this.sessionExpiryInterval = 0

    // keyed by topic filters and broker ids: no prototype (GHSA-52qw-whmv-87c5); made on the
    // first write (lib/lazy-state.js), as are the next two
    this.subscriptions = NO_SUBSCRIPTIONS
    this.duplicates = null

    // MQTT 5.0 inbound Topic Alias map (alias number -> topic name), scoped
    // to this connection. Populated as the client registers aliases.
    this._topicAliases = null
    // message ids of inbound QoS 2 messages stored and awaiting PUBREL
    this._inboundInflight = null

    this.broker = broker
    this.conn = conn
    conn.client = this

    this._disconnected = false
    this._authorized = false
    // MQTT 5.0: set to the reason code of a server-initiated DISCONNECT
    // (takeover, shutdown, packet-too-large); null for a normal/client drop.
    this.disconnectReasonCode = null
    // MQTT 5.0: latch so an oversized frame is rejected (and reported) once.
    this._rejectingPacketTooLarge = false
    this._parsingBatch = 1
    this._nextId = Math.ceil(Math.random() * 65535)

    // Drain timeout tracking - coalesced timer approach
    this._drainTimer = null
    this._pendingDrains = NO_ITEMS

    this.req = req
    this.connDetails = req ? req.connDetails : null

    // we use two variables for the will
    // because we store in _will while
    // we are authenticating
    this.will = null
    this._will = null

    this._parser = mqtt.parser()
    this._parser.client = this
    this._parser._queue = [] // queue packets received before client fires 'connect' event. Prevents memory leaks on 'connect' event
    this._parser.on('packet', enqueue)
    this.once('connected', dequeue)

    function nextBatch (err) {
      if (err) {
        that.emit('error', err)
        return
      }

      const client = that

      if (client._paused) {
        return
      }

      // An oversized frame is being rejected; the DISCONNECT/close that detaches
      // this listener is async, so stop reading/parsing now to bound how much of
      // a slow-drip oversized body is buffered during the close RTT. [MQTT-3.2.2-15]
      if (client._rejectingPacketTooLarge) {
        return
      }

      that._parsingBatch--
      if (that._parsingBatch <= 0) {
        that._parsingBatch = 0
        // everything buffered: from Node.js 25 on, read() without a size returns only the first
        // buffered chunk, and with no new data no further 'readable' comes for the rest
        const buf = client.conn.read(client.conn.readableLength || undefined)
        if (buf) {
          client._parser.parse(buf)
          // MQTT 5.0 Maximum Packet Size: once the fixed header is parsed the
          // declared length is known. Reject an oversized frame here, before
          // the rest of its (possibly chunked) payload is buffered, rather than
          // only after the whole packet is parsed. [MQTT-3.2.2-15]
          const max = client.broker.maximumPacketSize
          const pending = client._parser.packet
          if (max > 0 && pending && pending.length > 0) {
            const wireSize = packetWireSize(pending.length)
            if (wireSize > max) client.rejectPacketTooLarge(wireSize)
          }
        }
      }
    }
    this._nextBatch = nextBatch

    conn.on('readable', nextBatch)

    // listeners shared by every connection (`this` is the socket or the parser, whose `client`
    // is set above) instead of four binds and stream.finished's eight closures per client
    this.on('error', this._onError)
    conn.on('error', emitClientError)
    this._parser.on('error', emitClientError)
    conn.on('end', closeClient)
    // what stream.finished added beyond 'end' and 'error': the socket closed without an 'end'
    conn.on('close', closeClient)
    if (conn.closed) process.nextTick(closeClient.bind(conn))

    // keep alive (lib/keepalive.js): the interval in ms, the list of clients with it, the time of
    // the last packet and the neighbours in that list
    this._keepaliveInterval = -1
    this._keepaliveList = null
    this._keepaliveLast = 0
    this._keepalivePrev = null
    this._keepaliveNext = null

    // MQTT 5 QoS 1/2 deliveries awaiting PUBACK/PUBCOMP, and those waiting for
    // the client's Receive Maximum to allow them (lib/outbound-window.js)
    this._outInflight = 0
    this._outWaiting = NO_ITEMS

    // a resumed session's stored messages being sent (lib/resume-order.js)
    this._queueWalk = null

    this._connectTimer = setTimeout(function () {
      that.emit('error', new Error('connect did not arrive in time'))
    }, broker.connectTimeout)
  }

  _onError (err) {
    if (!err) return

    this.errored = true
    this.conn.removeAllListeners('error')
    this.conn.on('error', noop)
    // hack to clean up the write callbacks in case of error
    if (!this.conn.destroyed) {
      this.conn.destroy(err)
    }
    this.broker.emit(this.id ? 'clientError' : 'connectionError', this, err)
    this.close()
  }

  _deliver0 (_packet, cb) {
    const that = this
    const toForward = toForwardPacket(this, _packet)

    if (toForward) {
      // Give nodejs some time to clear stacks, or we will see
      // "Maximum call stack size exceeded" in a very high load
      setImmediate(() => {
        const packet = new Packet(toForward, that.broker)
        packet.qos = 0
        packet.dup = false // [MQTT-3.3.1-2]
        // handed to the connection is delivered (Mosquitto queues QoS 0 per client too): waiting
        // for 'drain' kept a callback, and the message in its scope, per message written to a
        // full socket, ~400 bytes each on top of the bytes
        write(that, packet, null)
        cb()
      })
    } else {
      setImmediate(cb)
    }
  }

  _deliverQoS (_packet, cb) {
    // downgrade to qos0 if requested by publish
    if (_packet.qos === 0) {
      this.deliver0(_packet, cb)
      return
    }
    if (heldBehindQueue(this, _packet)) {
      setImmediate(cb)
      return
    }
    this._sendQoS(_packet, cb)
  }

  _sendQoS (_packet, cb) {
    const that = this
    const toForward = toForwardPacket(this, _packet)

    if (toForward) {
      setImmediate(() => {
        const packet = new QoSPacket(toForward, that)
        // a first delivery: the publisher's DUP is not forwarded [MQTT-3.3.1-3]
        packet.dup = false
        // Downgrading to client subscription qos if needed
        const clientSub = that.subscriptions[packet.topic]
        if (clientSub && (clientSub.qos || 0) < packet.qos) {
          packet.qos = clientSub.qos
        }
        packet.writeCallback = cb
        const doWriteQoS = (err = null) => writeQoS(err, that, packet)
        if (that.clean || packet.retain) {
          doWriteQoS()
        } else {
          that.broker.persistence.outgoingUpdate(that, packet)
            .then(doWriteQoS, doWriteQoS)
        }
      })
    } else if (this.clean === false) {
      this.broker.persistence.outgoingClearMessageId(this, _packet)
        .then(noop, noop)
      // we consider this to be an error, since the packet is undefined
      // so there's nothing to send
      setImmediate(cb)
    } else {
      setImmediate(cb)
    }
  }

  publish (message, done) {
    const packet = new Packet(message, this.broker)
    const that = this
    if (packet.qos === 0) {
      // skip offline and send it as it is
      this.deliver0(packet, done)
      return
    }

    if (!this.clean && this.id) {
      this.broker.persistence.outgoingEnqueue({ clientId: this.id }, packet)
        .then(() => that.deliverQoS(packet, done), done)
    } else {
      that.deliverQoS(packet, done)
    }
  }

  subscribe (packet, done) {
    if (!packet.subscriptions) {
      if (!Array.isArray(packet)) {
        packet = [packet]
      }
      packet = {
        subscriptions: packet
      }
    }
    handleSubscribe(this, packet, false, done)
  }

  unsubscribe (packet, done) {
    if (!packet.unsubscriptions) {
      if (!Array.isArray(packet)) {
        packet = [packet]
      }
      packet = {
        unsubscriptions: packet
      }
    }
    handleUnsubscribe(this, packet, done)
  }

  /**
   * Handle successful drain - socket is writable again
   * Clears timer and completes all pending drain callbacks
   */
  _handleDrain () {
    // Clear the single per-client timer
    if (this._drainTimer) {
      clearTimeout(this._drainTimer)
      this._drainTimer = null
    }

    // Complete all pending drain callbacks
    const pending = this._pendingDrains
    this._pendingDrains = NO_ITEMS
    for (let i = 0; i < pending.length; i++) {
      setImmediate(pending[i], null, this)
    }
  }

  /**
   * Handle drain timeout - client failed to drain within timeout
   * Disconnects the client and fails all pending callbacks
   */
  _handleDrainTimeout () {
    this._drainTimer = null

    // Remove drain listener to prevent it firing after disconnect
    if (this._onDrainBound) {
      this.conn.removeListener('drain', this._onDrainBound)
    }

    // Fail all pending callbacks
    const error = new Error('drain timeout')
    const pending = this._pendingDrains
    this._pendingDrains = NO_ITEMS
    for (let i = 0; i < pending.length; i++) {
      setImmediate(pending[i], error, this)
    }

    // Disconnect the slow client
    this.conn.destroy(error)
  }

  /**
   * Register a callback to be called when socket drains
   * Uses per-client coalesced timer to reduce timer overhead
   * @param {Function} callback - called with (err, client)
   */
  waitForDrain (callback) {
    const drainTimeout = this.broker?.opts?.drainTimeout

    if (drainTimeout > 0) {
      // Per-client coalesced timer approach:
      // Only create ONE timer per client, regardless of pending writes

      // Add this callback to pending queue
      ownList(this, '_pendingDrains').push(callback)

      // If no timer exists, create one and set up drain listener
      if (!this._drainTimer) {
        // Create bound drain handler (if not already created)
        if (!this._onDrainBound) {
          this._onDrainBound = this._handleDrain.bind(this)
        }

        // Set up single drain listener
        this.conn.once('drain', this._onDrainBound)

        // Create single timer for this client
        this._drainTimer = setTimeout(
          this._handleDrainTimeout.bind(this),
          drainTimeout
        )
        this._drainTimer.unref() // Don't keep process alive
      }
      // else: timer already running, just queued the callback
    } else {
      // Without drain timeout: wait indefinitely (original behavior)
      this.conn.once('drain', callback)
    }
  }

  // MQTT 5.0: gracefully disconnect a client by sending a DISCONNECT packet
  // with a reason code (and optional properties) before closing the
  // connection. For v3/v4 clients, which have no server-side DISCONNECT, this
  // just closes the connection. [MQTT-3.14.0-1]
  disconnect (opts, done) {
    if (typeof opts === 'function') {
      done = opts
      opts = {}
    }
    opts = opts || {}

    const reasonCode = opts.reasonCode ?? 0
    // Record the server-sent reason code so it is observable on the subsequent
    // 'clientDisconnect' broker event: ops can distinguish a kick (0x8E
    // takeover, 0x8B shutdown, 0x95 packet-too-large) from a normal drop. v5
    // only — a numeric v5 reason code is meaningless to a v3/v4 client.
    if (this.version === 5) {
      this.disconnectReasonCode = reasonCode
    }

    if (this.version === 5 && this.connected && !this.closed && !this.errored) {
      const packet = { cmd: 'disconnect', reasonCode }
      if (opts.properties) {
        packet.properties = opts.properties
      }
      const that = this
      write(this, packet, function (err) {
        // Surface a failed graceful close instead of dropping it silently.
        if (err) that.emit('error', err)
        that.close(done)
      })
    } else {
      this.close(done)
    }
  }

  // MQTT 5.0 Maximum Packet Size: reject an oversized inbound frame. A
  // connected v5 client is told why with a 0x95 (Packet too large) DISCONNECT;
  // otherwise (pre-auth, or a v3/v4 client with no server-side DISCONNECT) the
  // connection is dropped. Either way the rejection is observable, carrying the
  // offending size and the configured limit. [MQTT-3.2.2-15]
  rejectPacketTooLarge (size, done) {
    // Reject once per offending frame. Two callers can re-enter this:
    //  - nextBatch (read loop, partial frames): the flag below makes nextBatch
    //    bail before the *next* readable event, stopping further buffering; and
    //  - handle() (lib/handlers/index.js): when two complete oversized packets
    //    arrive in one TCP segment, _parser.parse() emits 'packet' twice
    //    *synchronously* within a single call → handle → here, twice. disconnect()
    //    defers close() via setImmediate, so connected/closed/errored are
    //    unchanged between the two calls — only this early-return latch collapses
    //    them to a single clientError + 0x95 DISCONNECT.
    if (this._rejectingPacketTooLarge) {
      if (typeof done === 'function') done()
      return
    }
    this._rejectingPacketTooLarge = true
    const err = new Error('packet too large')
    err.size = size
    err.maximumPacketSize = this.broker.maximumPacketSize
    if (this.version === 5 && this.connected && !this.closed && !this.errored) {
      // Surface telemetry (the 0x95 DISCONNECT below does not pass through the
      // 'error' path), then tell the client why before closing.
      this.broker.emit('clientError', this, err)
      this.disconnect({ reasonCode: ReasonCodes.PACKET_TOO_LARGE }, done)
    } else {
      if (typeof done === 'function') done()
      this.emit('error', err)
    }
  }

  close (done) {
    if (this.closed) {
      if (typeof done === 'function') {
        done()
      }
      return
    }

    const that = this
    const conn = this.conn

    this.closed = true

    this._parser.removeAllListeners('packet')
    conn.removeAllListeners('readable')

    this._parser._queue = null

    stopKeepAlive(this)

    if (this._connectTimer) {
      clearTimeout(this._connectTimer)
      this._connectTimer = null
    }

    // Clean up drain timeout timer, listener, and flush pending callbacks
    if (this._drainTimer) {
      clearTimeout(this._drainTimer)
      this._drainTimer = null
    }
    if (this._onDrainBound) {
      this.conn.removeListener('drain', this._onDrainBound)
    }
    // Flush pending drain callbacks with connection closed error (an Error,
    // with its stack, only when someone waits)
    const pending = this._pendingDrains
    if (pending.length > 0) {
      const error = new Error('connection closed')
      this._pendingDrains = NO_ITEMS
      for (let i = 0; i < pending.length; i++) {
        setImmediate(pending[i], error, this)
      }
    }

    // without subscriptions handleUnsubscribe would call finish at once
    const unsubscriptions = Object.keys(this.subscriptions)
    if (unsubscriptions.length === 0) {
      finish()
    } else {
      handleUnsubscribe(this, { unsubscriptions }, finish)
    }

    function finish () {
      const will = that.will
      // _disconnected is set only if client is disconnected with a valid disconnect packet
      if (!that._disconnected && will) {
        // MQTT 5.0 Will Delay Interval: publish after the delay (capped by the
        // session expiry, since the will is sent no later than session end)
        // instead of immediately. A reconnect within the delay cancels it.
        const willDelay = (that.version === 5 && will.properties?.willDelayInterval) || 0
        const delay = Math.min(willDelay, that.sessionExpiryInterval)
        if (delay > 0) {
          that.broker.scheduleWill(that, will, delay)
        } else {
          that.broker.publishWill(that, will)
        }
      } else if (will) {
        // delete the persisted will even on clean disconnect https://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html#_Toc385349232
        that.broker.persistence.delWill({
          id: that.id,
          brokerId: that.broker.id
        }).then(noop, noop)
      }

      that.will = null // this function might be called twice
      that._will = null

      that.connected = false
      that.connecting = false

      conn.removeAllListeners('error')
      conn.on('error', noop)

      if (that.broker.clients[that.id] && that._authorized) {
        that.broker.unregisterClient(that)
        // MQTT 5.0: keep / expire / wipe the session per its expiry interval.
        that.broker.scheduleSessionExpiry(that)
        // a session that ends with the connection leaves no inbound QoS 2
        // state behind (else fresh client ids grow the store without bound)
        const persistence = that.broker.persistence
        if (that.clean && typeof persistence?.cleanIncoming === 'function') {
          persistence.cleanIncoming(that).then(noop, noop)
        }
      }

      // clear up the drain event listeners
      that.conn.emit('drain')
      that.conn.removeAllListeners('drain')

      conn.destroy()

      if (typeof done === 'function') {
        done()
      }
    }
  }

  pause () {
    this._paused = true
  }

  resume () {
    this._paused = false
    this._nextBatch()
  }

  emptyOutgoingQueue (done) {
    const client = this
    const persistence = client.broker.persistence

    function filter (packet, enc, next) {
      persistence.outgoingClearMessageId(client, packet)
        .then(pkt => next(null, pkt), next)
    }

    pipeline(
      persistence.outgoingStream(client),
      through(filter),
      done
    )
  }
}

function toForwardPacket (client, _packet) {
  // Mqttv5 3.8.3.1: https://docs.oasis-open.org/mqtt/mqtt/v5.0/mqtt-v5.0.html#_Toc3901169
  // prevent to forward messages sent by the same client when no-local flag is set
  if (_packet.clientId === client.id && _packet.nl) return

  const toForward = dedupe(client, _packet) &&
    client.broker.authorizeForward(client, _packet)

  // [MQTT-3.1.2-25] a PUBLISH larger than the client's Maximum Packet Size
  // is discarded as if it had been delivered (sized only for clients that set one)
  if (toForward && client.maximumPacketSize && publishSize(toForward) > client.maximumPacketSize) return

  return toForward
}

function dedupe (client, packet) {
  const id = packet.brokerId
  if (!id) {
    return true
  }
  const counter = packet.brokerCounter
  const result = ((client.duplicates && client.duplicates[id]) || 0) < counter
  if (result) {
    ownDuplicates(client)[id] = counter
  }
  return result
}

function writeQoS (err, client, packet) {
  if (err) {
    // is this right, or we should ignore thins?
    client.emit('error', err)
    // don't pass the error here or it will be thrown by mqemitter
    packet.writeCallback()
  } else {
    sendWithinWindow(client, packet, function (err) {
      if (err) {
        client.emit('error', err)
      }
      // don't pass the error here or it will be thrown by mqemitter
      packet.writeCallback()
    })
  }
}

util.inherits(Client, EventEmitter)

// mqemitter calls a subscription's handler unbound, so each client has its own deliver0 and
// deliverQoS (through the broker: Aedes#deliver0, #deliverQoS, which call the client's _deliver0 /
// _deliverQoS, so an embedder hooks every client's deliveries once per broker); made on first use,
// as a client that never subscribes needs neither
for (const name of ['deliver0', 'deliverQoS']) {
  Object.defineProperty(Client.prototype, name, {
    configurable: true,
    get () {
      const client = this
      const broker = this.broker
      const deliver = (packet, cb) => broker[name](client, packet, cb)
      Object.defineProperty(this, name, { value: deliver, writable: true, configurable: true })
      return deliver
    }
  })
}

function emitClientError (err) {
  this.client.emit('error', err)
}

function closeClient () {
  this.client.close()
}

function enqueue (packet) {
  const client = this.client
  // mqtt-packet's parser keeps the CONNECT as its `settings` for the protocol version (and bridge
  // flag) of the packets that follow: it keeps those two, not the packet with its strings and
  // password, for the life of the connection (memory per idle connection, issue 22)
  if (packet.cmd === 'connect') this.settings = parserSettings(packet)
  client._parsingBatch++
  // already connected or it's the first packet
  if (client.connackSent || client._parsingBatch === 1) {
    handle(client, packet, client._nextBatch)
  } else {
    if (this._queue.length < client.broker.queueLimit) {
      this._queue.push(packet)
    } else {
      this.emit('error', new Error('Client queue limit reached'))
    }
  }
}

// one frozen settings object per protocol version and bridge flag, shared by the parsers
const PARSER_SETTINGS = new Map()

function parserSettings (packet) {
  const key = packet.protocolVersion * 2 + (packet.bridgeMode === true ? 1 : 0)
  let settings = PARSER_SETTINGS.get(key)
  if (settings === undefined) {
    settings = Object.freeze({ protocolVersion: packet.protocolVersion, bridgeMode: packet.bridgeMode === true })
    PARSER_SETTINGS.set(key, settings)
  }
  return settings
}

function dequeue () {
  const q = this._parser._queue
  if (q) {
    for (let i = 0, len = q.length; i < len; i++) {
      handle(this, q[i], this._nextBatch)
    }

    this._parser._queue = null
  }
}

function noop () {}

// bytes of a PUBLISH as written to an MQTT 5 client (a message id when QoS > 0);
// Infinity when it cannot be encoded at all (mqtt-packet throws, e.g. on a user
// property whose value a truncated packet left null), so it is not sent either
function publishSize (packet) {
  try {
    return generatePublish(packet).length
  } catch {
    return Infinity
  }
}

function generatePublish (packet) {
  return mqtt.generate({
    cmd: 'publish',
    topic: packet.topic,
    payload: packet.payload,
    qos: packet.qos,
    messageId: packet.qos > 0 ? 1 : undefined,
    retain: packet.retain,
    properties: packet.properties
  }, { protocolVersion: 5 })
}

export default Client
