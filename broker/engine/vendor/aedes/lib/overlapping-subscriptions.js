import { isShared } from './shared-subscriptions.js'

// [MQTT-3.3.4-2], [MQTT-3.3.4-3] A client whose subscriptions overlap (several
// of its filters match one topic) gets one copy of a message, at the highest
// QoS they grant, carrying the Subscription Identifier of every one of them.
// The engine delivers the copy of whichever subscription the emitter calls
// first (the others are dropped as duplicates), so that one looks up the rest.
// Shared subscriptions deliver on their own and are left out.

// Whether the client's plain subscriptions can overlap at all: at least two,
// one of them with a wildcard. Only such clients pay for the lookup.
export function mayOverlap (subscriptions) {
  let plain = 0
  let wildcard = false
  for (const filter in subscriptions) {
    if (isShared(filter)) continue
    plain++
    if (filter.includes('+') || filter.includes('#')) wildcard = true
  }
  return plain > 1 && wildcard
}

function matches (filter, topic) {
  const f = filter.split('/')
  const t = topic.split('/')
  // [MQTT-4.7.2-1] a filter starting with a wildcard does not match a $ topic
  if ((f[0] === '+' || f[0] === '#') && topic.startsWith('$')) return false
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true
    if (i >= t.length || (f[i] !== '+' && f[i] !== t[i])) return false
  }
  return f.length === t.length
}

// The highest granted QoS and the identifiers (one number, an array, or
// undefined) of the client's plain subscriptions matching the topic
export function combined (subscriptions, topic) {
  let qos = 0
  const ids = []
  for (const filter in subscriptions) {
    if (isShared(filter) || !matches(filter, topic)) continue
    const sub = subscriptions[filter]
    if (sub.qos > qos) qos = sub.qos
    if (sub.si !== undefined) ids.push(sub.si)
  }
  return { qos, si: ids.length > 1 ? ids : ids[0] }
}
