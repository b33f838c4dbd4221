// The dashboard: opportunities and ticks from the live socket through the client SDK, server
// figures from /metrics, round-trip latency from probes. ?token=... is passed on to the socket.
import { LiveClient } from '/dashboard/sdk/index.js'

const MAX_ROWS = 40
const CLOSED_KEEP_MS = 30_000
const IDLE_AFTER_MS = 5000 // no tick for this long: say that nothing is being published
const WHY = {
  spread: 'the spread closed',
  stale: 'a quote went stale',
  invalid: 'a quote became invalid',
  venue: 'a venue went down',
  book: 'a book went out of sequence (resyncing)'
}
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

// ---- what the page reads of published data, checked before it is kept ----
// Anyone with a publish grant can put anything on these topics (and a topic's last value comes
// back on every reload): what fails its check is counted and dropped, never rendered.
const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v)
const isLeg = (l) => isObject(l) && typeof l.exchange === 'string' && typeof l.symbol === 'string' && typeof l.price === 'number'
const isOpportunity = (d) =>
  isObject(d) &&
  typeof d.id === 'string' &&
  typeof d.symbol === 'string' &&
  typeof d.status === 'string' &&
  typeof d.netBps === 'number' &&
  isLeg(d.buy) &&
  isLeg(d.sell)
const isTick = (d) => isObject(d) && typeof d.exchange === 'string' && typeof d.symbol === 'string'
const isVenue = (d) => isObject(d) && typeof d.exchange === 'string' && typeof d.state === 'string'
let malformed = 0
const accept = (check, data) => {
  if (check(data)) return true
  malformed++
  $('malformed').hidden = false
  $('malformed').textContent = `${malformed} malformed event${malformed === 1 ? '' : 's'} ignored`
  return false
}

// ---- opportunities ----
const opportunities = new Map() // id -> latest event data, with receivedAt and the best net bps while open
client
  .subscribe(
    'opportunities.>',
    ({ data }) => {
      if (!accept(isOpportunity, data)) return
      const before = opportunities.get(data.id)
      const bestNetBps = data.status === 'closed' ? before?.bestNetBps : Math.max(before?.bestNetBps ?? -Infinity, data.netBps)
      opportunities.set(data.id, { ...data, bestNetBps, receivedAt: Date.now() })
    },
    { onGap: notice }
  )
  .catch(notice)

// ---- venue health: the last venue.<exchange> of each ----
const venues = new Map() // exchange -> health, with receivedAt
client
  .subscribe(
    'venue.*',
    ({ data }) => {
      if (accept(isVenue, data)) venues.set(data.exchange, { ...data, receivedAt: Date.now() })
    },
    { onGap: notice }
  )
  .catch(notice)

// ---- the chart: best net bps of the open opportunities per symbol, one point a second ----
const CHART_SECONDS = 300
const COLORS = ['#2563eb', '#059669', '#d97706', '#dc2626', '#7c3aed', '#0891b2', '#db2777', '#65a30d', '#4b5563', '#9333ea']
const series = new Map() // symbol -> { color, points: [{ at, bps|null }] }

function sampleChart(open, wall) {
  const best = new Map()
  for (const o of open) best.set(o.symbol, Math.max(best.get(o.symbol) ?? -Infinity, o.netBps))
  for (const symbol of best.keys()) if (!series.has(symbol) && series.size < COLORS.length) series.set(symbol, { color: COLORS[series.size], points: [] })
  for (const [symbol, s] of series) {
    s.points.push({ at: wall, bps: best.get(symbol) ?? null })
    while (s.points.length > 0 && wall - s.points[0].at > CHART_SECONDS * 1000) s.points.shift()
    if (s.points.every((p) => p.bps === null)) series.delete(symbol)
  }
}

function drawChart(wall) {
  const canvas = $('spread-chart')
  const ctx = canvas.getContext('2d')
  const { width, height } = canvas
  const left = 48
  const bottom = height - 22
  ctx.clearRect(0, 0, width, height)
  // The axis runs from the lowest to the highest net seen (0 always on it, negative nets below it),
  // in steps of 20 bps so its quarters fall on whole bps.
  let min = 0
  let max = 0
  for (const s of series.values())
    for (const p of s.points)
      if (p.bps !== null) {
        min = Math.min(min, p.bps)
        max = Math.max(max, p.bps)
      }
  min = Math.floor(min / 20) * 20
  max = max > 0 || min === 0 ? Math.max(20, Math.ceil(max / 20) * 20) : 0
  const x = (at) => left + ((at - (wall - CHART_SECONDS * 1000)) / (CHART_SECONDS * 1000)) * (width - left - 8)
  const y = (bps) => bottom - ((bps - min) / (max - min)) * (bottom - 8)
  ctx.font = '12px system-ui, sans-serif'
  ctx.fillStyle = '#6b7280'
  ctx.strokeStyle = '#eef0f3'
  for (let i = 0; i <= 4; i++) {
    const v = min + ((max - min) * i) / 4
    ctx.beginPath()
    ctx.moveTo(left, y(v))
    ctx.lineTo(width - 8, y(v))
    ctx.stroke()
    ctx.fillText(`${v.toFixed(0)} bps`, 2, y(v) + 4)
  }
  for (const m of [5, 4, 3, 2, 1, 0]) ctx.fillText(m === 0 ? 'now' : `−${m} min`, x(wall - m * 60_000) - 14, height - 4)
  ctx.lineWidth = 2
  for (const s of series.values()) {
    ctx.strokeStyle = s.color
    ctx.beginPath()
    let drawing = false
    for (const p of s.points) {
      if (p.bps === null) {
        drawing = false
        continue
      }
      if (drawing) ctx.lineTo(x(p.at), y(p.bps))
      else ctx.moveTo(x(p.at), y(p.bps))
      drawing = true
    }
    ctx.stroke()
    // A dot per second: a dislocation of a few seconds is seen, not a hairline.
    ctx.fillStyle = s.color
    for (const p of s.points) if (p.bps !== null) ctx.fillRect(x(p.at) - 2, y(p.bps) - 2, 4, 4)
  }
  $('spread-legend').replaceChildren(
    ...[...series].map(([symbol, s]) => {
      const li = document.createElement('li')
      const swatch = document.createElement('span')
      swatch.style.background = s.color
      li.append(swatch, symbol)
      return li
    })
  )
}

// ---- ticks ----
const exchanges = new Map() // exchange -> { count, rate, last }
let ticks = 0
let lastTickAt = 0
const openedAt = Date.now()
client
  .subscribe(
    'ticker.>',
    ({ data }) => {
      if (!accept(isTick, data)) return
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
/** Each part of the page on its own: one that throws leaves the others (and the next second) drawing. */
function render() {
  const wall = Date.now()
  for (const part of [renderFigures, renderOpportunities, renderVenues, renderTicks]) {
    try {
      part(wall)
    } catch (err) {
      notice(err)
    }
  }
}

function renderFigures() {
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
}

function renderOpportunities(wall) {
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
        [leg(o.buy, o.sell), 'text'],
        [leg(o.sell, o.buy), 'text'],
        [significant(o.size)],
        [fixed(o.netBps, 2), o.netBps < 0 ? 'net loss' : 'net'],
        [significant(o.maxSize)],
        [significant(o.maxProfit)],
        [ladder(o.ladder), 'ladder text'],
        [fixed(o.score, 3)],
        [`${Math.max(0, wall - o.detectedAt)} ms`]
      ])
    )
  )
  sampleChart(open, wall)
  drawChart(wall)
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
}

function renderVenues(wall) {
  const reports = [...venues.values()].sort((a, b) => a.exchange.localeCompare(b.exchange))
  if (reports.length > 0)
    $('venues').tBodies[0].replaceChildren(
      ...reports.map((v) => {
        const state = wall - v.receivedAt > 5000 ? 'down' : v.state
        return row(`venue-${state}`, [
          [v.exchange, 'text'],
          [state, 'text state'],
          [booksCell(v)],
          [duration(v.lastMessageAgeMs)],
          [duration(v.clockOffsetMs)],
          [duration(v.latencyMs)],
          [v.gaps],
          [v.resyncs],
          [v.checksumFailures],
          [v.reconnects]
        ])
      })
    )
}

function renderTicks() {
  $('ticks').tBodies[0].replaceChildren(
    ...[...exchanges.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([exchange, e]) => row('', [[exchange, 'text'], [Math.round(e.rate)], [e.last.symbol, 'text'], [e.last.bid], [e.last.ask]]))
  )
}

/** Books live of those configured, and which are not (the venue's own list, the first few). */
function booksCell(v) {
  const out = Array.isArray(v.notLive) ? v.notLive.filter((s) => typeof s === 'string') : []
  if (out.length === 0) return `${v.booksLive} / ${v.instruments}`
  const shown = out.slice(0, 4).join(', ') + (out.length > 4 ? ` +${out.length - 4}` : '')
  return `${v.booksLive} / ${v.instruments} (not live: ${shown})`
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

/** Where a leg trades: its exchange, and its instrument when the two legs trade different ones (USDT against USD). */
function leg(l, other) {
  return `${l.exchange}${l.symbol !== other.symbol ? ` ${l.symbol}` : ''} @ ${l.price}`
}

/** Net bps at each ladder notional; where the books were too thin, how much of it filled. */
function ladder(steps) {
  if (!Array.isArray(steps) || steps.length === 0) return '–'
  const short = (n) => (n >= 1000 ? `${n / 1000}k` : `${n}`)
  return steps
    .map((s) => `${short(s.notional)}: ${s.filled < s.notional ? `${fixed(s.netBps, 1)} (${Math.round((s.filled / s.notional) * 100)}%)` : fixed(s.netBps, 1)}`)
    .join(' · ')
}

/** ms as ms, s, h or days: a replayed recording's clock offset is years. */
function duration(ms) {
  if (typeof ms !== 'number') return '–'
  const a = Math.abs(ms)
  if (a < 10_000) return `${Math.round(ms)} ms`
  if (a < 3_600_000) return `${(ms / 1000).toFixed(1)} s`
  if (a < 172_800_000) return `${(ms / 3_600_000).toFixed(1)} h`
  return `${Math.round(ms / 86_400_000)} days`
}

/** Four significant digits: an ETH-BTC profit of 0.00003 stays 0.00003. */
function significant(n) {
  return typeof n === 'number' ? Number(n.toPrecision(4)).toString() : '–'
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
