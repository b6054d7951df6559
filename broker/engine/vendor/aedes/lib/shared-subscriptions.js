// [MQTT-4.8.2] Shared Subscriptions: `$share/<ShareName>/<filter>`. Each
// message matching <filter> goes to exactly one member of each group.

export const SHARE_PREFIX = '$share/'

export function isShared (topic) {
  return topic.startsWith(SHARE_PREFIX)
}

// The group and filter of a shared subscription, or null when it is malformed:
// an empty ShareName, one holding a wildcard, or no filter [MQTT-4.8.2-1], [MQTT-4.8.2-2]
export function parseShared (topic) {
  const rest = topic.slice(SHARE_PREFIX.length)
  const slash = rest.indexOf('/')
  if (slash <= 0) return null
  const group = rest.slice(0, slash)
  const filter = rest.slice(slash + 1)
  if (group.includes('+') || group.includes('#') || filter === '') return null
  return { group, filter }
}

// One group: a single emitter listener on the filter hands each message to one
// member. Members are the delivery functions of the subscribed clients, each
// with the member it stands for (`func.sharedMember`, set by the subscribe
// handler: client id, granted QoS, persistent session); a client leaves its
// groups when its connection closes (its session, if persistent, keeps the
// subscription and joins again on reconnect), so the members here are the
// online ones. Without a router the next member in turn gets the message;
// with one (option sharedSubscriptionRouter: groups spanning processes) the
// router names the client chosen for each message and only the process
// holding that client delivers it.
class Group {
  constructor (topic, filter, router) {
    this.topic = topic
    this.filter = filter
    this.members = []
    this.next = 0
    this.deliver = router ? (packet, cb) => this.deliverTo(router.target(packet, topic), packet, cb) : this.deliverNext
  }

  deliverNext = (packet, cb) => {
    const members = this.members
    if (members.length === 0) return cb()
    if (this.next >= members.length) this.next = 0
    const member = members[this.next]
    this.next = (this.next + 1) % members.length
    member.func(packet, cb)
  }

  deliverTo (clientId, packet, cb) {
    // the newest connection of the client when a takeover overlaps
    for (let i = this.members.length - 1; i >= 0; i--) {
      if (this.members[i].id === clientId) return this.members[i].func(packet, cb)
    }
    cb()
  }
}

// The groups of one broker instance, keyed by the whole `$share/...` filter.
// Without a router group state lives in this process: with an emitter shared
// by several processes each would deliver once per process (the embedding
// broker must then pass a router, or keep shared subscriptions off: option
// sharedSubscriptions).
export class SharedGroups {
  constructor (mq, router) {
    this.mq = mq
    this.router = router || null
    this.groups = new Map()
    this.anonymous = 0
  }

  join (topic, func, done) {
    const member = func.sharedMember || { clientId: `api-${++this.anonymous}`, qos: 0, persistent: false }
    const entry = { id: member.clientId, func }
    const finish = this.router
      ? (err) => err ? (done || noop)(err) : this.router.joined(topic, member, done || noop)
      : done
    const existing = this.groups.get(topic)
    if (existing) {
      existing.members.push(entry)
      return finish ? finish() : undefined
    }
    const group = new Group(topic, parseShared(topic).filter, this.router)
    group.members.push(entry)
    this.groups.set(topic, group)
    this.mq.on(group.filter, group.deliver, finish)
  }

  leave (topic, func, done) {
    const group = this.groups.get(topic)
    const i = group ? group.members.findIndex((m) => m.func === func) : -1
    if (i < 0) return done ? done() : undefined
    const [entry] = group.members.splice(i, 1)
    if (this.router) this.router.left(topic, entry.id)
    if (i < group.next) group.next--
    if (group.members.length > 0) return done ? done() : undefined
    this.groups.delete(topic)
    this.mq.removeListener(group.filter, group.deliver, done)
  }
}

function noop () {}
