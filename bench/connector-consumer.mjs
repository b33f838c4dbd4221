// One contender of bench/connectors.ts, alone in its process so its resident memory is its own:
//   node bench/connector-consumer.mjs <floor|ours|ccxt> <burst|paced> <port>
// It keeps the OKX books of the three recorded instruments from the replay server on <port> and
// "publishes" the top 20 levels of each changed book (counted, not sent), then prints one JSON line.
// burst: CPU from subscribing until the message stamped SENTINEL has been applied.
// paced: for every book it saw, the exchange time (the replay's message index) and when it saw it.
// gap: the session once with one BTC-USDT update missing; did it notice, and what book did it end with?
import { performance } from 'node:perf_hooks'

const [kind, mode, port] = process.argv.slice(2)
const SENTINEL = 9_999_999_999_999
const SYMBOLS = { ours: ['BTC-USDT', 'UNI-USD-INVPERP', 'BTC-USD-INV20220527'], ccxt: ['BTC/USDT', 'UNI/USD:UNI', 'BTC/USD:BTC-220527'] }
const INST_IDS = ['BTC-USDT', 'UNI-USD-SWAP', 'BTC-USD-220527']
const rest = `http://127.0.0.1:${port}`
const wsBase = `ws://127.0.0.1:${port}/${mode}`
const now = () => performance.timeOrigin + performance.now()

const seen = [] // paced: [exchangeTime, seenAt]
let published = 0
let top = null // the last BTC-USDT book published, top 20 a side
let errors = 0
let cpu0
let rssReady = 0
let finish

function observe(exchangeTime) {
  published++
  if (mode === 'paced') seen.push([exchangeTime, now()])
  else if (exchangeTime === SENTINEL) finish()
}

const done = new Promise((resolve) => {
  finish = () => {
    const cpu = process.cpuUsage(cpu0)
    resolve({ cpuMs: (cpu.user + cpu.system) / 1000 })
  }
})

let stop
if (kind === 'floor') {
  // The floor: the socket and JSON.parse of every message, no book.
  const { default: WebSocket } = await import('ws')
  const ws = new WebSocket(`${wsBase}/public`)
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject))
  rssReady = process.memoryUsage().rss
  ws.on('message', (data) => {
    const m = JSON.parse(data.toString())
    if (m.data) observe(Number(m.data[0].ts))
  })
  cpu0 = process.cpuUsage()
  ws.send(JSON.stringify({ op: 'subscribe', args: INST_IDS.map((instId) => ({ channel: 'books', instId })) }))
  stop = () => ws.terminate()
} else if (kind === 'ours') {
  const { startFeeds } = await import('../dist/market/setup.js')
  let feeds
  // startFeeds reads the instruments over REST, then connects; CPU counts from the subscription.
  const ready = startFeeds({
    feeds: new Map([['okx', SYMBOLS.ours]]),
    endpoints: { okx: { ws: `${wsBase}/public`, rest } },
    bookDepth: 20,
    now,
    sink: {
      book: (data) => {
        if (data.exchange === 'okx' && data.symbol === 'BTC-USDT') top = { bids: data.bids, asks: data.asks }
        observe(data.exchangeTime)
      },
      ticker() {},
      venue() {}
    }
  })
  feeds = await ready
  rssReady = process.memoryUsage().rss
  cpu0 = process.cpuUsage()
  stop = () => {
    errors = feeds.health()[0].checksumFailures
    feeds.stop()
  }
} else if (kind === 'ccxt') {
  const { default: ccxt } = await import('ccxt')
  const exchange = new ccxt.pro.okx({ urls: { api: { rest, ws: wsBase } } })
  await exchange.loadHttpProxyAgent() // ccxt refuses plain ws:// URLs without it
  await exchange.loadMarkets()
  rssReady = process.memoryUsage().rss
  cpu0 = process.cpuUsage()
  let running = true
  stop = () => {
    running = false
    const book = exchange.orderbooks['BTC/USDT']
    if (book) top = { bids: book.bids.slice(0, 20), asks: book.asks.slice(0, 20) }
    return exchange.close()
  }
  const seenTs = new Map()
  ;(async () => {
    while (running) {
      // Resolves once per burst of messages (ccxt conflates); each book that changed is published.
      try {
        await exchange.watchOrderBookForSymbols(SYMBOLS.ccxt)
      } catch (err) {
        if (!running) return
        console.error(`ccxt: ${err.constructor.name}: ${err.message}`)
        errors++ // ccxt's way of saying a book broke (InvalidNonce, ChecksumError): watch again
        if (errors > 100) throw err
        continue
      }
      for (const book of Object.values(exchange.orderbooks)) {
        if (seenTs.get(book.symbol) === book.timestamp) continue
        seenTs.set(book.symbol, book.timestamp)
        book.bids.slice(0, 20)
        book.asks.slice(0, 20)
        observe(book.timestamp)
      }
    }
  })().catch((err) => {
    if (running) {
      console.error(err)
      process.exit(1)
    }
  })
}

let result
if (mode === 'burst') result = await done
else await new Promise((resolve) => process.once('message', resolve)) // the parent says when the replay is over
const usage = process.resourceUsage()
const memory = process.memoryUsage()
await stop()
const report = {
  kind,
  mode,
  published,
  errors,
  top,
  rssReadyMB: rssReady / 1e6,
  rssMB: memory.rss / 1e6,
  maxRssMB: (usage.maxRSS * 1024) / 1e6,
  heapUsedMB: memory.heapUsed / 1e6,
  ...result
}
if (mode === 'paced') report.seen = seen
process.send(report)
process.exit(0)
