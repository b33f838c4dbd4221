// A standalone synthetic-feed publisher for demos and load tests:
//   node dist/market/publisher.js [--url ws://127.0.0.1:8765/ws/live | --http http://127.0.0.1:8765] [--rate 1000] [--seed 1]
//                               [--symbols 20] [--exchanges 5] [--seconds 0 (forever)]
import { parseArgs } from 'node:util'
import { WebSocket } from 'ws'
import { decode, encode } from '@msgpack/msgpack'
import { SyntheticFeed } from './synthetic.js'
import { Agent, fetch } from 'undici'

const USAGE = `usage: node dist/market/publisher.js [options]

Publishes a synthetic ticker feed (ticker.<exchange>.<symbol>) with planted dislocations.

  --url URL          live endpoint to publish over WebSocket (default ws://127.0.0.1:8765/ws/live)
  --http URL         publish with POST /publish/:topic to this base URL instead
  --rate N           ticks per second (default 1000)
  --seed N           seed: same seed, same ticks (default 1)
  --symbols N        symbols (default 20)
  --exchanges N      exchanges (default 5)
  --seconds N        stop after N seconds (default 0: until SIGINT or SIGTERM)
  --help             this text

Prints {sent, acked, refused} once a second. Exit codes: 0 done, 1 the server cannot be reached, 2 usage.
`

function usage(message: string): never {
  process.stderr.write(`publisher: ${message}\n\n${USAGE}`)
  process.exit(2)
}

const { values } = (() => {
  try {
    return parseArgs({
      options: {
        url: { type: 'string', default: 'ws://127.0.0.1:8765/ws/live' },
        http: { type: 'string' },
        rate: { type: 'string', default: '1000' },
        seed: { type: 'string', default: '1' },
        symbols: { type: 'string', default: '20' },
        exchanges: { type: 'string', default: '5' },
        seconds: { type: 'string', default: '0' },
        help: { type: 'boolean', short: 'h', default: false }
      }
    })
  } catch (err) {
    return usage((err as Error).message)
  }
})()
if (values.help) {
  process.stdout.write(USAGE)
  process.exit(0)
}

/** A whole number from `min` up, or a usage error naming the option. */
function count(name: 'rate' | 'seed' | 'symbols' | 'exchanges' | 'seconds', min: number): number {
  const n = Number(values[name])
  if (!Number.isSafeInteger(n) || n < min) usage(`--${name} must be a whole number from ${min}, got "${values[name]}"`)
  return n
}
const rate = count('rate', 1)
const seconds = count('seconds', 0)
const feed = new SyntheticFeed({ seed: count('seed', 0), symbols: count('symbols', 1), exchanges: count('exchanges', 2) })

let send: (topic: string, data: unknown) => void
let close: () => void = () => {}
let acked = 0
let refused = 0
/** The WebSocket closed: answers still owed will never come. */
let closed = false
if (values.http) {
  const base = values.http.replace(/\/$/, '')
  // A bounded pool: requests beyond it queue here instead of opening thousands of sockets, which
  // overflow the server's accept backlog on a loaded machine and come back as connection errors.
  const dispatcher = new Agent({ connections: 16 })
  close = () => {
    void dispatcher.close()
  }
  send = (topic, data) => {
    fetch(`${base}/publish/${topic}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(data), dispatcher })
      .then((res) => {
        if (res.ok) acked++
        else refused++
        return res.arrayBuffer()
      })
      .catch(() => {
        refused++
      })
  }
} else {
  const ws = new WebSocket(values.url, ['live.v1.msgpack'])
  await new Promise((resolve, reject) => {
    ws.once('open', resolve)
    ws.once('error', reject)
  }).catch((err: Error) => {
    process.stderr.write(`publisher: cannot reach ${values.url}: ${err.message}\n`)
    process.exit(1)
  })
  ws.on('message', (data: Buffer) => {
    if ((decode(data) as { type?: string }).type === 'ack') acked++
    else refused++
  })
  ws.once('close', () => {
    closed = true
  })
  send = (topic, data) => ws.send(encode({ type: 'publish', topic, data }))
  close = () => ws.close()
}

const started = Date.now()
let sent = 0
const timer = setInterval(() => {
  const now = Date.now()
  const due = Math.floor(((now - started) * rate) / 1000)
  for (; sent < due; sent++) {
    const tick = feed.next(now)
    send(`ticker.${tick.exchange}.${tick.symbol}`, tick)
  }
  if (seconds > 0 && now - started >= seconds * 1000) stop()
}, 5)
const report = setInterval(() => console.log(JSON.stringify({ sent, acked, refused, dislocations: feed.planted.length })), 1000)

/**
 * Stops sending, waits for every answer, prints the final counts and exits. No deadline of its own:
 * on a loaded machine the queued HTTP answers take as long as they take, and each request is
 * bounded by undici's own timeouts; a closed WebSocket ends the wait. A second SIGINT exits at once.
 */
async function stop() {
  clearInterval(timer)
  clearInterval(report)
  while (acked + refused < sent && !closed) await new Promise((r) => setTimeout(r, 20))
  console.log(JSON.stringify({ sent, acked, refused, unanswered: sent - acked - refused, dislocations: feed.planted.length }))
  close()
  process.exit(0)
}
process.once('SIGINT', stop)
process.once('SIGTERM', stop)
