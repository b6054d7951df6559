import EventEmitter from 'node:events'
import { randomUUID } from 'node:crypto'
import { promisify } from 'node:util'
import Packet from 'aedes-packet'
import memory from 'aedes-persistence'
import mqemitter from 'mqemitter'
import Client from './lib/client.js'
import { $SYS_PREFIX, batch, noop, runSeries, armLongTimer, topicLevelCount } from './lib/utils.js'
import { SESSION_NEVER_EXPIRES, ReasonCodes } from './lib/constants.js'
import { SharedGroups, isShared } from './lib/shared-subscriptions.js'
import pkg from './package.json' with { type: 'json' }

const defaultOptions = {
  concurrency: 100,
  heartbeatInterval: 60000, // 1 minute
  connectTimeout: 30000, // 30 secs
  drainTimeout: 60000, // 60 secs - protects against slow/frozen clients by default, set to 0 to disable
  decodeProtocol: null,
  preConnect: defaultPreConnect,
  authenticate: defaultAuthenticate,
  authorizePublish: defaultAuthorizePublish,
  authorizeSubscribe: defaultAuthorizeSubscribe,
  authorizeForward: defaultAuthorizeForward,
  published: defaultPublished,
  trustProxy: false,
  trustedProxies: [],
  queueLimit: 42,
  maxClientsIdLength: 23,
  keepaliveLimit: 0,
  maxTopicLevels: 100,
  // inbound QoS 2 messages a client may leave awaiting PUBREL (0 = no limit);
  // past it a 3.1/3.1.1 client is disconnected. A v5 client is held to the
  // advertised receiveMaximum instead, when one is set. [MQTT-3.3.4-7]
  maxInflightInbound: 1000,
  // MQTT 5.0: highest QoS a client may publish with (advertised in CONNACK when
  // below 2; a v5 PUBLISH above it gets DISCONNECT 0x9B). [MQTT-3.2.2-11]
  maximumQoS: 2,
  // MQTT 5.0: whether retained messages are accepted (advertised in CONNACK when
  // false; a v5 retained PUBLISH then gets DISCONNECT 0x9A). [MQTT-3.2.2-14]
  retainAvailable: true,
  // MQTT 5.0 shared subscriptions ($share/<group>/<filter>), also served to
  // 3.1.1 clients. Group state is per process: when several processes share
  // one emitter, pass a router (below) or turn this off. Off: a v5 client gets SUBACK 0x9E and the
  // CONNACK says sharedSubscriptionAvailable false. [MQTT-4.8.2]
  sharedSubscriptions: true,
  // Groups spanning several processes that share one emitter: an object with
  // joined(topic, member, done), left(topic, clientId) and target(packet, topic)
  // (the client id chosen for the packet in that group); persistent members'
  // copies are then the router's to store (lib/shared-subscriptions.js).
  sharedSubscriptionRouter: null,
  // Publish $SYS/<id>/new/clients and /disconnect/clients for every client.
  // Brokers sharing one emitter need new/clients (a client id connecting at
  // one closes its connection at another); a broker alone on its emitter can
  // turn them off: nobody else hears them, and each is a routed publish.
  announceClients: true,
  // MQTT 5.0: maximum Topic Alias value the broker accepts from a client.
  // 0 disables inbound topic aliases (the value advertised in CONNACK).
  topicAliasMaximum: 0,
  // MQTT 5.0: maximum size (bytes) of a packet the broker accepts. 0 = no
  // limit (and nothing advertised in CONNACK).
  maximumPacketSize: 0,
  // MQTT 5.0: maximum number of unacknowledged QoS 1/2 PUBLISH a client may
  // have in flight towards the broker. 0 = not advertised (defaults to 65535).
  receiveMaximum: 0,
  // MQTT 5.0: upper bound (seconds) on the Session Expiry Interval a client may
  // request. A larger requested value (including 0xFFFFFFFF "never") is clamped
  // to this. Bounds how long per-client session-expiry / will-delay timers and
  // their persisted state live, limiting single-source accumulation. 0 = no cap.
  sessionExpiryIntervalLimit: 0,
  // MQTT 5.0: cap on the number of pending session-expiry entries (and, applied
  // separately, delayed-will timers) the broker holds at once. Beyond it, a
  // newly disconnecting session is expired immediately and a new delayed will is
  // published immediately, bounding memory under identity-cycling abuse without
  // evicting already-pending entries. 0 = unlimited.
  pendingSessionsLimit: 0,
  // MQTT 5.0 Response Information (§3.2.2.3.15): the base string returned in
  // CONNACK when a client sets Request Response Information. Either a static
  // string or a `(client) => string | undefined` function. null = never sent.
  responseInformation: null
}
const version = pkg.version

// Hard ceiling for maxTopicLevels: the bundled mqemitter and aedes-persistence
// build qlobber with its default max_words of 100 and aedes cannot raise it, so
// a larger value would pass our guard yet still throw `too many words` in the
// matcher. Clamp to [1, MAX_TOPIC_LEVELS] to keep the option safe.
const MAX_TOPIC_LEVELS = 100

// Sentinel stored in `expiringSessions` for a never-expiring (0xFFFFFFFF)
// session: it has no real timer but must still occupy a slot against the
// pending-sessions cap. `clear()` is a no-op so close()/clearSessionExpiry can
// treat every entry uniformly.
const NO_EXPIRY_TIMER = { clear: noop }

export class Aedes extends EventEmitter {
  constructor (opts) {
    super()
    const that = this

    opts = Object.assign({}, defaultOptions, opts)
    this.opts = opts
    this.id = opts.id || randomUUID()
    // +1 when construct a new aedes-packet
    // internal track for last brokerCounter
    this.counter = 0
    this.queueLimit = opts.queueLimit
    this.connectTimeout = opts.connectTimeout
    this.keepaliveLimit = opts.keepaliveLimit
    this.maxClientsIdLength = opts.maxClientsIdLength
    // clamp to a safe [1, 100] range; see MAX_TOPIC_LEVELS
    this.maxTopicLevels = Math.min(Math.max(opts.maxTopicLevels, 1), MAX_TOPIC_LEVELS)
    this.topicAliasMaximum = opts.topicAliasMaximum
    this.maximumPacketSize = opts.maximumPacketSize
    this.receiveMaximum = opts.receiveMaximum
    this.maximumQoS = opts.maximumQoS
    this.retainAvailable = opts.retainAvailable
    this.sharedSubscriptions = opts.sharedSubscriptions
    this.announceClients = opts.announceClients
    this.maxInflightInbound = Number.isInteger(opts.maxInflightInbound) && opts.maxInflightInbound >= 0
      ? opts.maxInflightInbound
      : defaultOptions.maxInflightInbound
    this.sessionExpiryIntervalLimit = opts.sessionExpiryIntervalLimit
    this.pendingSessionsLimit = opts.pendingSessionsLimit
    this.responseInformation = opts.responseInformation
    this.mq = opts.mq || mqemitter({
      concurrency: opts.concurrency,
      matchEmptyLevels: true // [MQTT-4.7.1-3]
    })
    this._sharedGroups = new SharedGroups(this.mq, opts.sharedSubscriptionRouter)
    this.handle = function handle (conn, req) {
      conn.setMaxListeners(opts.concurrency * 2)
      // create a new Client instance for a new connection
      // return, just to please standard
      return new Client(that, conn, req)
    }

    this.preConnect = opts.preConnect
    this.authenticate = opts.authenticate
    this.authorizePublish = opts.authorizePublish
    this.authorizeSubscribe = opts.authorizeSubscribe
    this.authorizeForward = opts.authorizeForward
    this.published = opts.published

    this.decodeProtocol = opts.decodeProtocol
    this.trustProxy = opts.trustProxy
    this.trustedProxies = opts.trustedProxies

    // keyed by client and broker ids a peer chooses: no prototype, so an id
    // such as __proto__ or constructor is an ordinary key (GHSA-52qw-whmv-87c5)
    this.clients = Object.create(null)
    this.brokers = Object.create(null)
    // MQTT 5.0: pending session-expiry timers, keyed by clientId. A timer is
    // armed when a client with a finite, non-zero Session Expiry Interval
    // disconnects, and cleared if it reconnects before the timer fires.
    this.expiringSessions = new Map()
    // MQTT 5.0: pending Will Delay Interval timers, keyed by clientId. Armed
    // when a client with a will and a non-zero will delay disconnects, and
    // cleared if it reconnects before the will is published.
    this.delayedWills = new Map()
    // MQTT 5.0: clientIds whose session is mid-takeover (a new connection is
    // replacing an existing one). While an id is in flight, the *old* client's
    // close must not expire or wipe the session the new connection is resuming.
    this._takingOver = new Set()
    // Wills being published (a delayed will's timer fired, or the broker is
    // stopping): close() waits for them before the emitter closes.
    this._willsPublishing = new Set()
    this.closed = true
  }

  async listen () {
    const opts = this.opts
    const that = this

    // metadata
    this.connectedClients = 0
    this.closed = false

    this.persistence = opts.persistence || memory()
    if (this.persistence.setup.constructor.name !== 'AsyncFunction') {
      throw new Error('persistence.setup() must be an async function')
    }
    await this.persistence.setup(this)

    const heartbeatTopic = $SYS_PREFIX + that.id + '/heartbeat'
    const birthTopic = $SYS_PREFIX + that.id + '/birth'

    this._heartbeatInterval = setInterval(heartbeat, opts.heartbeatInterval)

    const bufId = Buffer.from(that.id, 'utf8')

    // in a cluster env this is used to warn other broker instances
    // that this broker is alive
    that.publish({
      topic: birthTopic,
      payload: bufId
    }, noop)

    function heartbeat () {
      that.publish({
        topic: heartbeatTopic,
        payload: bufId
      }, noop)
    }

    async function _clearWills () {
      const pAuthorizePublish = promisify(that.authorizePublish).bind(that)
      const pPublish = promisify(that.publish).bind(that)
      const batchSize = 16 // default highWatermark for Writable in ObjectMode

      async function checkAndPublish (will) {
        const notPublish = that.brokers[will.brokerId] !== undefined && that.brokers[will.brokerId] + (3 * opts.heartbeatInterval) >= Date.now()
        if (notPublish) {
          return
        }
        // randomize this, so that multiple brokers
        // do not publish the same wills at the same time
        const client = that.clients[will.clientId] || null
        await pAuthorizePublish(client, will)
        await pPublish(will)
        await that.persistence.delWill({
          id: will.clientId,
          brokerId: will.brokerId
        })
      }

      // delete old brokers
      for (const broker in that.brokers) {
        if (that.brokers[broker] + (3 * opts.heartbeatInterval) < Date.now()) {
          delete that.brokers[broker]
        }
      }

      const wills = that.persistence.streamWill(that.brokers)
      for await (const promises of batch(wills, checkAndPublish, batchSize)) {
        await Promise.all(promises)
      }
    }

    this._clearWillInterval = setInterval(() => {
      _clearWills().catch(err => {
        that.emit('error', err)
      })
    }, opts.heartbeatInterval * 4)
    this.mq.on($SYS_PREFIX + '+/heartbeat', function storeBroker (packet, done) {
      that.brokers[packet.payload.toString()] = Date.now()
      done()
    })

    this.mq.on($SYS_PREFIX + '+/birth', function brokerBorn (packet, done) {
      const brokerId = packet.payload.toString()

      // reset duplicates counter
      if (brokerId !== that.id) {
        for (const clientId in that.clients) {
          const duplicates = that.clients[clientId].duplicates
          if (duplicates) delete duplicates[brokerId]
        }
      }

      done()
    })

    this.mq.on($SYS_PREFIX + '+/new/clients', function closeSameClients (packet, done) {
      const serverId = packet.topic.split('/')[1]
      const clientId = packet.payload.toString()
      if (serverId !== that.id) {
        // the session goes on at the other broker: its expiry and its delayed
        // will, counting here since its connection here ended, no longer apply
        that.clearSessionExpiry(clientId)
        that.clearDelayedWill(clientId)
      }

      if (that.clients[clientId] && serverId !== that.id) {
        if (that.clients[clientId].closed) {
          // remove the client from the list if it is already closed
          that.deleteClient(clientId)
          done()
        } else {
          that.clients[clientId].close(done)
        }
      } else {
        done()
      }
    })
  }

  get version () {
    return version
  }

  static async createBroker (opts) {
    const aedes = new Aedes(opts)
    await aedes.listen()
    return aedes
  }

  // one client's delivery of a message (client.deliver0 and client.deliverQoS call these): an
  // embedder replaces them on its broker to hook every client's deliveries in one place
  deliver0 (client, packet, cb) {
    client._deliver0(packet, cb)
  }

  deliverQoS (client, packet, cb) {
    client._deliverQoS(packet, cb)
  }

  publish (packet, client, done) {
    if (typeof client === 'function') {
      done = client
      client = null
    }
    // reject deeply nested topics before they reach qlobber (via mqemitter and
    // the persistence trie), whose synchronous `too many words` throw would
    // otherwise crash the broker. The protocol handlers validate the wire paths
    // earlier; this also covers the will publish and direct programmatic use.
    // See lib/utils.js#topicLevelCount.
    if (topicLevelCount(packet.topic) > this.maxTopicLevels) {
      return (done || noop)(new Error('topic has too many levels'))
    }
    const p = new Packet(packet, this)
    // MQTT 5.0 Message Expiry Interval: record the absolute expiry so that a
    // message dropped into the offline queue can be discarded (or have its
    // remaining lifetime recomputed) when it is finally delivered. The
    // properties check is first so v3/v4 publishes (no `properties`) short-
    // circuit off the fast path without the extra field reads.
    if (p.properties?.messageExpiryInterval > 0 && p.messageExpiry === undefined) {
      p.messageExpiry = Date.now() + (p.properties.messageExpiryInterval * 1000)
    }
    const publishFuncs = p.qos > 0 ? publishFuncsQoS : publishFuncsSimple

    runSeries(new PublishState(this, client, packet), publishFuncs, p, done)
  }

  subscribe (topic, func, done) {
    // see publish(): guard against qlobber's synchronous `too many words` throw
    if (topicLevelCount(topic) > this.maxTopicLevels) {
      return (done || noop)(new Error('topic has too many levels'))
    }
    if (this.sharedSubscriptions && isShared(topic)) {
      this._sharedGroups.join(topic, func, done)
      return
    }
    this.mq.on(topic, func, done)
  }

  unsubscribe (topic, func, done) {
    if (topicLevelCount(topic) > this.maxTopicLevels) {
      return (done || noop)(new Error('topic has too many levels'))
    }
    if (this.sharedSubscriptions && isShared(topic)) {
      this._sharedGroups.leave(topic, func, done)
      return
    }
    this.mq.removeListener(topic, func, done)
  }

  registerClient (client) {
    const that = this
    if (this.clients[client.id]) {
      // [MQTT-3.1.4-2] An existing session with the same client id is taken
      // over; tell the old v5 connection with reason code 0x8E (Session taken
      // over) before closing it. Mark the id as in-flight so the old client's
      // close doesn't expire/wipe the session this connection is resuming.
      this._takingOver.add(client.id)
      this.clients[client.id].disconnect({ reasonCode: ReasonCodes.SESSION_TAKEN_OVER }, function closeClient () {
        that._finishRegisterClient(client)
      })
    } else {
      this._finishRegisterClient(client)
    }
  }

  _finishRegisterClient (client) {
    // Reconnecting before the session expires cancels the pending expiry and
    // any delayed will (the session continues, so the will is not sent).
    this._takingOver.delete(client.id)
    this.clearSessionExpiry(client.id)
    this.clearDelayedWill(client.id)
    this.connectedClients++
    this.clients[client.id] = client
    this.emit('client', client)
    if (!this.announceClients) return
    this.publish({
      topic: $SYS_PREFIX + this.id + '/new/clients',
      payload: Buffer.from(client.id, 'utf8')
    }, noop)
  }

  unregisterClient (client) {
    this.deleteClient(client.id)
    this.emit('clientDisconnect', client)
    if (!this.announceClients) return
    this.publish({
      topic: $SYS_PREFIX + this.id + '/disconnect/clients',
      payload: Buffer.from(client.id, 'utf8')
    }, noop)
  }

  deleteClient (clientId) {
    this.connectedClients--
    delete this.clients[clientId]
  }

  // MQTT 5.0: clamp a client-requested Session Expiry Interval (seconds) to the
  // broker maximum. Bounds the lifetime of the per-client expiry/will timers and
  // persisted state a single source can pin, limiting memory accumulation from a
  // client cycling identities with large intervals. 0 = no cap.
  clampSessionExpiry (interval) {
    const max = this.sessionExpiryIntervalLimit
    return max > 0 && interval > max ? max : interval
  }

  // MQTT 5.0 Session Expiry. Called when a client disconnects: decides whether
  // the session's persisted state (subscriptions, queued messages, will) is
  // kept, wiped immediately, or wiped after the Session Expiry Interval.
  scheduleSessionExpiry (client) {
    // v3/v4 keep the legacy behavior (clean wiped on next connect, non-clean
    // kept indefinitely), so there is no timed expiry to arrange, unless
    // sessionExpiryIntervalLimit cut the non-clean session's "never" (as
    // Mosquitto's persistent_client_expiration expires 3.1.1 sessions).
    if (client.version !== 5 && (client.clean || client.sessionExpiryInterval >= SESSION_NEVER_EXPIRES)) return
    // A takeover for this id is in flight: the resuming connection owns the
    // session, so this (old) client's close must not expire or wipe it.
    if (this._takingOver.has(client.id)) return
    if (this.closed) {
      // Stopping: no timer, but the session's expiry starts now, and a final
      // save of the broker state keeps it (sessionExpiry()).
      this.expiringSessions.set(client.id, { clear: noop, interval: client.sessionExpiryInterval, endedAt: Date.now() })
      return
    }

    // Clear any stale entry for this id first so the previous armLongTimer handle
    // is never orphaned (defensive; reconnect/takeover normally clears it).
    this.clearSessionExpiry(client.id)

    const interval = client.sessionExpiryInterval
    if (interval === 0) {
      // The session ends with the network connection — a clean teardown, not an
      // expiry, so no `sessionExpired` event (clientDisconnect already covers it).
      this._wipeSession(client)
      return
    }
    // Count cap: when the broker is already holding the maximum number of
    // pending sessions, end this one now instead of retaining it. Denying the
    // newest (rather than evicting an oldest) bounds memory without dropping
    // already-established sessions. A never-expiring session (0xFFFFFFFF) pins
    // persisted state indefinitely, so it counts against the cap too — checking
    // before the never-expires branch closes the bypass where such sessions
    // could accumulate without bound. (This id was just cleared above, so size
    // excludes it.) 0 = unlimited.
    if (this.pendingSessionsLimit > 0 &&
        this.expiringSessions.size >= this.pendingSessionsLimit) {
      this._wipeSession(client)
      // Observability: the DoS guard tripped, so abuse is diagnosable instead of
      // a session silently vanishing. (The drop is the cap's story, not a normal
      // expiry, so it is reported via sessionLimitReached rather than sessionExpired.)
      this.emit('sessionLimitReached', client, { reason: 'sessionExpiry', limit: this.pendingSessionsLimit })
      return
    }
    if (interval >= SESSION_NEVER_EXPIRES) {
      // 0xFFFFFFFF: retained until explicitly taken over. Track it (no timer)
      // so it still occupies a slot against the pending-sessions cap; the no-op
      // sentinel is cleaned up uniformly by clearSessionExpiry / close().
      this.expiringSessions.set(client.id, NO_EXPIRY_TIMER)
      return
    }

    this._expireSessionAt(client, interval, Date.now())
  }

  _expireSessionAt (client, interval, endedAt) {
    const that = this
    const timer = this._armIdTimer(this.expiringSessions, client.id, endedAt + interval * 1000 - Date.now(), function expireSession () {
      that._wipeSession(client)
      // The session outlived its connection and then reached its expiry interval
      // — observable so "where did client X's session go?" is diagnosable.
      that.emit('sessionExpired', client)
    })
    timer.interval = interval
    timer.endedAt = endedAt
  }

  // The expiry a session without connection is counting: { interval (s),
  // endedAt (ms since the epoch) }, undefined when none (connected, never
  // expires, v3/v4). Kept through close() so that a final save has it.
  sessionExpiry (clientId) {
    const e = this.expiringSessions.get(clientId)
    return e?.endedAt === undefined ? undefined : { interval: e.interval, endedAt: e.endedAt }
  }

  // Re-arms the expiry of a session restored from persistence after a restart,
  // counted from when its connection ended: one whose interval has passed is
  // wiped at once. Nothing for a session whose client is connected.
  restoreSessionExpiry (clientId, interval, endedAt) {
    if (this.closed || this.clients[clientId]) return
    this.clearSessionExpiry(clientId)
    this._expireSessionAt({ id: clientId, broker: this, emptyOutgoingQueue: Client.prototype.emptyOutgoingQueue }, interval, endedAt)
  }

  clearSessionExpiry (clientId) {
    this._clearIdTimer(this.expiringSessions, clientId)
  }

  // Remove all persisted state belonging to an expired/ended session. Surface
  // persistence failures on the broker 'error' event rather than swallowing
  // them, so a backend that fails to wipe a session is observable.
  _wipeSession (client) {
    const that = this
    const onErr = (err) => that.emit('error', err)
    this.persistence.cleanSubscriptions(client).then(noop, onErr)
    this.persistence.delWill({ id: client.id, brokerId: this.id }).then(noop, onErr)
    client.emptyOutgoingQueue(noop)
  }

  // MQTT 5.0 Will Delay Interval: publish the will after `delaySeconds`
  // instead of immediately, unless the client reconnects first.
  scheduleWill (client, will, delaySeconds) {
    if (this.closed) {
      // Broker is shutting down: the delay is cut short and the will sent now,
      // as Mosquitto sends the delayed wills when it stops.
      this.publishWill(client, will)
      return
    }
    // A takeover for this id is in flight: the resuming connection cancels the
    // delayed will, so don't schedule (or, at the cap, prematurely publish) it.
    if (this._takingOver.has(client.id)) return
    // Clear any stale timer for this id first so its armLongTimer handle is
    // never orphaned (defensive).
    this.clearDelayedWill(client.id)
    // Count cap (see scheduleSessionExpiry): when already holding the maximum
    // number of delayed wills, publish this one now instead of queuing a timer.
    if (this.pendingSessionsLimit > 0 &&
        this.delayedWills.size >= this.pendingSessionsLimit) {
      this.publishWill(client, will)
      // Observability: the same DoS guard tripped on the will-delay path.
      this.emit('sessionLimitReached', client, { reason: 'willDelay', limit: this.pendingSessionsLimit })
      return
    }
    const that = this
    const fireWill = () => that.publishWill(client, will)
    // close() fires it early (see there)
    this._armIdTimer(this.delayedWills, client.id, delaySeconds * 1000, fireWill).fire = fireWill
  }

  // Shared lifecycle for the per-clientId timer maps (expiringSessions /
  // delayedWills): arm a long timer, store it, and on fire delete the entry and
  // run `onFire` — unless the id was re-registered meanwhile (identity guard: a
  // reconnect/takeover now owns it, so the session/will must not be touched).
  // [MQTT-3.1.3-9 for wills]
  _armIdTimer (map, id, delayMs, onFire) {
    const that = this
    const timer = armLongTimer(delayMs, function fired () {
      map.delete(id)
      if (that.clients[id]) return
      onFire()
    })
    map.set(id, timer)
    return timer
  }

  _clearIdTimer (map, id) {
    const timer = map.get(id)
    if (timer) {
      timer.clear()
      map.delete(id)
    }
  }

  clearDelayedWill (clientId) {
    this._clearIdTimer(this.delayedWills, clientId)
  }

  // Authorize and publish a client's will, then remove it from persistence.
  publishWill (client, will) {
    const that = this
    let published
    const publishing = new Promise((resolve) => { published = resolve })
    this._willsPublishing.add(publishing)
    this.authorizePublish(client, will, function (err) {
      if (err) { return cleanup() }
      that.publish(will, client, cleanup)
    })
    function cleanup () {
      that.persistence.delWill({ id: client.id, brokerId: that.id })
        .then(noop, (err) => that.emit('error', err))
        .finally(() => {
          that._willsPublishing.delete(publishing)
          published()
        })
    }
  }

  close (cb = noop) {
    const that = this
    if (this.closed) {
      return cb()
    }
    this.closed = true
    clearInterval(this._heartbeatInterval)
    clearInterval(this._clearWillInterval)
    // the entries stay: a final save of the broker state keeps what they count (sessionExpiry())
    for (const timer of this.expiringSessions.values()) {
      timer.clear()
    }
    // the wills still waiting for their delay are sent now, as Mosquitto does when it stops
    for (const timer of this.delayedWills.values()) {
      timer.clear()
      timer.fire()
    }
    this.delayedWills.clear()
    const promises = []
    for (const clientId of Object.keys(this.clients)) {
      promises.push(closeClient(this.clients[clientId]))
    }
    Promise.all(promises)
      .then(() => Promise.all(that._willsPublishing))
      .finally(() => {
        that.emit('closed')
        that.mq.close(cb)
      })
  }
}

function storeRetained (packet, done) {
  if (packet.retain) {
    this.broker.persistence.storeRetained(packet)
      .then(() => done(null), done)
  } else {
    done()
  }
}

function emitPacket (packet, done) {
  if (this.client) packet.clientId = this.client.id
  this.broker.mq.emit(packet, done)
}

function enqueueOffline (packet, done) {
  const enqueuer = new DoEnqueues()

  enqueuer.complete = done
  enqueuer.packet = packet
  enqueuer.topic = packet.topic
  enqueuer.broker = this.broker
  this.broker.persistence.subscriptionsByTopic(packet.topic)
    .then(subs => enqueuer.done(null, subs), enqueuer.done)
}

class DoEnqueues {
  constructor () {
    this.next = null
    this.complete = null
    this.packet = null
    this.topic = null
    this.broker = null

    const that = this

    this.done = function doneEnqueue (err, subs) {
      const broker = that.broker

      if (err) {
        // is this really recoverable?
        // let's just error the whole aedes
        // https://nodejs.org/api/events.html#events_error_events
        broker.emit('error', err)
        return
      }

      if (that.topic.indexOf($SYS_PREFIX) === 0) {
        subs = subs.filter(removeSharp)
      }

      const packet = that.packet
      const complete = that.complete

      that.packet = null
      that.complete = null
      that.topic = null

      broker.persistence.outgoingEnqueueCombi(subs, packet)
        .then(() => complete(null), complete)
    }
  }
}

// + is 43
// # is 35
function removeSharp (sub) {
  const code = sub.topic.charCodeAt(0)
  return code !== 43 && code !== 35
}

function callPublished (_, done) {
  this.broker.published(this.packet, this.client, done)
  this.broker.emit('publish', this.packet, this.client)
}

const publishFuncsSimple = [
  storeRetained,
  emitPacket,
  callPublished
]
const publishFuncsQoS = [
  storeRetained,
  enqueueOffline,
  emitPacket,
  callPublished
]

async function closeClient (clientInstance) {
  return new Promise((resolve) => {
    // [MQTT-3.14.4-1] notify v5 clients with reason code 0x8B (Server shutting
    // down) before closing; v3/v4 clients are just closed by disconnect().
    clientInstance.disconnect({ reasonCode: ReasonCodes.SERVER_SHUTTING_DOWN }, resolve)
  })
}

function defaultPreConnect (client, packet, callback) {
  callback(null, true)
}

function defaultAuthenticate (client, username, password, callback) {
  callback(null, true)
}

function defaultAuthorizePublish (client, packet, callback) {
  if (packet.topic.startsWith($SYS_PREFIX)) {
    return callback(new Error($SYS_PREFIX + ' topic is reserved'))
  }
  callback(null)
}

function defaultAuthorizeSubscribe (client, sub, callback) {
  callback(null, sub)
}

function defaultAuthorizeForward (client, packet) {
  return packet
}

function defaultPublished (packet, client, callback) {
  callback(null)
}

class PublishState {
  constructor (broker, client, packet) {
    this.broker = broker
    this.client = client
    this.packet = packet
  }
}

function warnMigrate () {
  throw new Error(
    ` Aedes default export has been removed.
 Use 'const aedes = await Aedes.createBroker()' instead.
 See: https://github.com/moscajs/aedes/docs/MIGRATION.MD
 `)
}

export default warnMigrate
