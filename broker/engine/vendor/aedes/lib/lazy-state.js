// Per-connection state that most clients never use (subscriptions, inbound QoS 2 ids, topic
// aliases, waiting deliveries) starts as a shared empty, frozen value and becomes the client's own
// on the first write: memory per idle connection (issue 22). Readers need no change; a write that
// bypasses these functions throws (frozen), it cannot go to the shared value.

export const NO_SUBSCRIPTIONS = Object.freeze(Object.create(null))
export const NO_ITEMS = Object.freeze([])

export function ownSubscriptions (client) {
  if (client.subscriptions === NO_SUBSCRIPTIONS) client.subscriptions = Object.create(null)
  return client.subscriptions
}

export function ownDuplicates (client) {
  if (client.duplicates === null) client.duplicates = Object.create(null)
  return client.duplicates
}

export function ownInboundInflight (client) {
  if (client._inboundInflight === null) client._inboundInflight = new Set()
  return client._inboundInflight
}

export function ownTopicAliases (client) {
  if (client._topicAliases === null) client._topicAliases = new Map()
  return client._topicAliases
}

// an array of the client that starts as NO_ITEMS (_pendingDrains, _outWaiting)
export function ownList (client, name) {
  if (client[name] === NO_ITEMS) client[name] = []
  return client[name]
}
