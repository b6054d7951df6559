// Keep alive for every client of a broker on one timer instead of a Timeout (and its closure) per
// client: memory per idle connection (issue 22). The clients with the same keep alive interval
// are a list in the order of their last packet (a packet moves its client to the end), so the
// first of each list is the next of it to expire, and the broker's one timer waits for the
// earliest of those. A client still expires its interval (keepalive × 1.5 s + 1 ms,
// [MQTT-3.1.2-24]) after its last packet, to the millisecond, as with its own Timeout.

class KeepAlive {
  constructor () {
    this.lists = new Map() // interval (ms) → { interval, head, tail }
    this.clients = 0
    this.timer = null
    this.due = Infinity
  }

  arm (due) {
    if (due >= this.due) return
    if (this.timer !== null) clearTimeout(this.timer)
    this.due = due
    this.timer = setTimeout(expire, Math.max(1, Math.ceil(due - performance.now())), this)
  }
}

export function startKeepAlive (client, interval) {
  const keepAlive = (client.broker._keepAlive ??= new KeepAlive())
  let list = keepAlive.lists.get(interval)
  if (list === undefined) {
    list = { interval, head: null, tail: null }
    keepAlive.lists.set(interval, list)
  }
  client._keepaliveInterval = interval
  client._keepaliveList = list
  client._keepaliveLast = performance.now()
  append(list, client)
  keepAlive.clients++
  keepAlive.arm(client._keepaliveLast + interval)
}

// a packet arrived from the client
export function refreshKeepAlive (client) {
  const list = client._keepaliveList
  if (list === null) return
  client._keepaliveLast = performance.now()
  if (list.tail !== client) {
    unlink(list, client)
    append(list, client)
  }
}

export function stopKeepAlive (client) {
  const list = client._keepaliveList
  client._keepaliveInterval = -1
  if (list === null) return
  unlink(list, client)
  client._keepaliveList = null
  const keepAlive = client.broker._keepAlive
  // nothing left to watch: no timer holds the process (a Timeout per client was cleared here too)
  if (--keepAlive.clients === 0 && keepAlive.timer !== null) {
    clearTimeout(keepAlive.timer)
    keepAlive.timer = null
    keepAlive.due = Infinity
  }
}

function expire (keepAlive) {
  keepAlive.timer = null
  keepAlive.due = Infinity
  const now = performance.now()
  const expired = []
  let next = Infinity
  for (const list of keepAlive.lists.values()) {
    let client = list.head
    while (client !== null && now - client._keepaliveLast >= list.interval) {
      expired.push(client)
      client = client._keepaliveNext
    }
    if (client !== null) next = Math.min(next, client._keepaliveLast + list.interval)
  }
  if (next !== Infinity) keepAlive.arm(next)
  for (const client of expired) {
    // closed by the handlers of an earlier one (a Timeout per client was cleared then)
    if (client._keepaliveList === null) continue
    const interval = client._keepaliveInterval
    stopKeepAlive(client)
    // what the client's own Timeout did; its interval stays readable until close()
    client._keepaliveInterval = interval
    client.broker.emit('keepaliveTimeout', client)
    client.emit('error', new Error('keep alive timeout'))
  }
}

function append (list, client) {
  client._keepalivePrev = list.tail
  client._keepaliveNext = null
  if (list.tail === null) list.head = client
  else list.tail._keepaliveNext = client
  list.tail = client
}

function unlink (list, client) {
  const prev = client._keepalivePrev
  const next = client._keepaliveNext
  if (prev === null) list.head = next
  else prev._keepaliveNext = next
  if (next === null) list.tail = prev
  else next._keepalivePrev = prev
  client._keepalivePrev = null
  client._keepaliveNext = null
}
