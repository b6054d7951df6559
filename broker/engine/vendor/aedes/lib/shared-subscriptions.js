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

// One group: a single emitter listener on the filter hands each message to the
// next member in turn. Members are the delivery functions of the subscribed
// clients; a client leaves its groups when its connection closes (its session,
// if persistent, keeps the subscription and joins again on reconnect), so the
// members here are the online ones.
class Group {
  constructor (filter) {
    this.filter = filter
    this.members = []
    this.next = 0
    this.deliver = (packet, cb) => {
      const members = this.members
      if (members.length === 0) return cb()
      if (this.next >= members.length) this.next = 0
      const member = members[this.next]
      this.next = (this.next + 1) % members.length
      member(packet, cb)
    }
  }
}

// The groups of one broker instance, keyed by the whole `$share/...` filter.
// Group state lives in this process: with an emitter shared by several
// processes each would deliver once per process (the embedding broker must
// then keep shared subscriptions off: option sharedSubscriptions).
export class SharedGroups {
  constructor (mq) {
    this.mq = mq
    this.groups = new Map()
  }

  join (topic, func, done) {
    const existing = this.groups.get(topic)
    if (existing) {
      existing.members.push(func)
      return done ? done() : undefined
    }
    const group = new Group(parseShared(topic).filter)
    group.members.push(func)
    this.groups.set(topic, group)
    this.mq.on(group.filter, group.deliver, done)
  }

  leave (topic, func, done) {
    const group = this.groups.get(topic)
    const i = group ? group.members.indexOf(func) : -1
    if (i < 0) return done ? done() : undefined
    group.members.splice(i, 1)
    if (i < group.next) group.next--
    if (group.members.length > 0) return done ? done() : undefined
    this.groups.delete(topic)
    this.mq.removeListener(group.filter, group.deliver, done)
  }
}
