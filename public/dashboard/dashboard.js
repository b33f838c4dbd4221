// The dashboard: opportunities and ticks from the live socket through the client SDK, server
// figures from /metrics, round-trip latency from probes. ?token=... is passed on to the socket.
import { LiveClient } from '/dashboard/sdk/index.js'

const MAX_ROWS = 40
const CLOSED_KEEP_MS = 30_000
const IDLE_AFTER_MS = 5000 // no tick for this long: say that nothing is being published
const WHY = { spread: 'the spread closed', stale: 'a quote went stale', invalid: 'a quote became invalid', venue: 'a venue went down' }
const $ = (id) => document.getElementById(id)

const endpoint = new URL('/ws/live', location.href)
endpoint.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:'
const token = new URLSearchParams(location.search).get('token') ?? undefined
const client = new LiveClient({ url: endpoint.toString(), token })

const status = $('status')
const setStatus = (text, cls) => {
  status.textContent = text
  status.className = `status ${cls}`
}
client.on('open', () => setStatus('live', 'open'))
client.on('close', () => setStatus('reconnecting…', 'down'))

// ---- opportunities ----
const opportunities = new Map() // id -> latest event data, with receivedAt and the best net bps while open
client
  .subscribe(
    'opportunities.>',
    ({ data }) => {
      const before = opportunities.get(data.id)
      const bestNetBps = data.status === 'closed' ? before?.bestNetBps : Math.max(before?.bestNetBps ?? -Infinity, data.netBps)
      opportunities.set(data.id, { ...data, bestNetBps, receivedAt: Date.now() })
    },
    { onGap: notice }
  )
  .catch(notice)

// ---- ticks ----
const exchanges = new Map() // exchange -> { count, rate, last }
let ticks = 0
let lastTickAt = 0
const openedAt = Date.now()
client
  .subscribe(
    'ticker.>',
    ({ data }) => {
      ticks++
      lastTickAt = Date.now()
      const e = exchanges.get(data.exchange) ?? { count: 0, rate: 0, last: data }
      e.count++
      e.last = data
      exchanges.set(data.exchange, e)
    },
    { snapshot: false, onGap: notice }
  )
  .catch(notice)

// ---- latency: a probe every 500 ms, percentiles over the last 120 ----
const rtts = []
setInterval(async () => {
  if (!client.connected) return
  try {
    rtts.push(await client.probe(2000))
    if (rtts.length > 120) rtts.shift()
  } catch {}
}, 500)

// ---- server figures from /metrics ----
let deliveries = null
async function scrapeMetrics() {
  try {
    const text = await (await fetch('/metrics')).text()
    const value = (name) => {
      const line = text.split('\n').find((l) => l.startsWith(`${name} `))
      return line === undefined ? NaN : Number(line.slice(name.length + 1))
    }
    $('connections').textContent = value('realtime_connections')
    const delivered = value('realtime_frames_out_total{type="event"}')
    const now = performance.now()
    if (deliveries !== null) $('delivery-rate').textContent = Math.round((delivered - deliveries.value) / ((now - deliveries.at) / 1000)).toLocaleString()
    deliveries = { value: delivered, at: now }
  } catch {}
}

// ---- rendering, once a second ----
let lastTicks = 0
let lastRender = performance.now()
function render() {
  const now = performance.now()
  const seconds = (now - lastRender) / 1000
  lastRender = now
  $('tick-rate').textContent = Math.round((ticks - lastTicks) / seconds).toLocaleString()
  lastTicks = ticks
  for (const e of exchanges.values()) {
    e.rate = e.count / seconds
    e.count = 0
  }

  if (rtts.length > 0) {
    const sorted = [...rtts].sort((a, b) => a - b)
    const at = (p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)].toFixed(2)
    $('latency').textContent = `${at(50)} / ${at(99)}`
  }

  const wall = Date.now()
  $('idle').hidden = !(client.connected && wall - Math.max(lastTickAt, openedAt) > IDLE_AFTER_MS)
  for (const [id, o] of opportunities) if (o.status === 'closed' && wall - o.receivedAt > CLOSED_KEEP_MS) opportunities.delete(id)
  const newest = (a, b) => b.receivedAt - a.receivedAt
  const open = [...opportunities.values()]
    .filter((o) => o.status !== 'closed')
    .sort(newest)
    .slice(0, MAX_ROWS)
  const closed = [...opportunities.values()]
    .filter((o) => o.status === 'closed')
    .sort(newest)
    .slice(0, MAX_ROWS)
  $('open-count').textContent = open.length
  $('opportunities').tBodies[0].replaceChildren(
    ...open.map((o) =>
      row('open', [
        [o.symbol, 'text'],
        [o.status, 'text'],
        [`${o.buy.exchange} @ ${o.buy.price}`, 'text'],
        [`${o.sell.exchange} @ ${o.sell.price}`, 'text'],
        [fixed(o.size, 4)],
        [fixed(o.netBps, 2), 'net'],
        [fixed(o.profit, 2)],
        [fixed(o.score, 3)],
        [`${Math.max(0, wall - o.detectedAt)} ms`]
      ])
    )
  )
  // A closed one is history, not a trade: its figures at close (often negative) are not shown.
  $('closed').tBodies[0].replaceChildren(
    ...closed.map((o) =>
      row('closed', [
        [o.symbol, 'text'],
        [`${o.buy.exchange} → ${o.sell.exchange}`, 'text'],
        [fixed(o.bestNetBps, 2)],
        [`${o.lifetimeMs} ms`],
        [WHY[o.reason] ?? o.reason ?? '–', 'text']
      ])
    )
  )

  $('ticks').tBodies[0].replaceChildren(
    ...[...exchanges.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([exchange, e]) => row('', [[exchange, 'text'], [Math.round(e.rate)], [e.last.symbol, 'text'], [e.last.bid], [e.last.ask]]))
  )
}

function row(cls, cells) {
  const tr = document.createElement('tr')
  tr.className = cls
  for (const [text, cellClass] of cells) {
    const td = document.createElement('td')
    td.textContent = text
    if (cellClass) td.className = cellClass
    tr.append(td)
  }
  return tr
}

function fixed(n, digits) {
  return typeof n === 'number' ? n.toFixed(digits) : '–'
}

function notice(what) {
  const el = $('notice')
  el.hidden = false
  el.textContent = what instanceof Error ? `error: ${what.message}` : `missed events on ${what.topic ?? what.pattern} (${what.reason}); showing the latest`
}

setInterval(render, 1000)
setInterval(scrapeMetrics, 1000)
scrapeMetrics()
