// ccxt against the hand-written connectors (npm run bench:connectors), issue #18: the same recorded
// OKX session (test/fixtures/venues/okx/stream.jsonl: 290 `books` messages of three instruments)
// replayed by a local server to three contenders, each alone in a child process
// (bench/connector-consumer.mjs):
//   floor  the socket and JSON.parse only (what any connector pays),
//   ours   the hand-written OKX connector (startFeeds: book, CRC32 checksum, one publish per turn),
//   ccxt   ccxt.pro.okx watchOrderBookForSymbols, pointed at the replay by overriding its URLs.
// burst: the session ROUNDS times as fast as the socket takes it; CPU per message and memory.
// gap: the session once with the first BTC-USDT update dropped (a lost message): does the
// contender notice (checksum), and does its book end equal to the one after a clean replay?
// paced: the session once more, one message every PACE_MS; latency from the replay's send to the
// contender's publish, both stamped with performance.timeOrigin + now() (one machine clock).
import { fork } from 'node:child_process'
import { createServer } from 'node:http'
import { readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { WebSocketServer, type WebSocket } from 'ws'

const FIXTURES = new URL('../test/fixtures/venues/okx/', import.meta.url)
const ROUNDS = Number(process.env.ROUNDS ?? 200)
const PACE_MS = Number(process.env.PACE_MS ?? 2)
const REPEAT = Number(process.env.REPEAT ?? 2)
const SENTINEL = 9_999_999_999_999
const now = () => performance.timeOrigin + performance.now()

const session = readFileSync(new URL('stream.jsonl', FIXTURES), 'utf8')
  .trim()
  .split('\n')
  .filter((l) => l.includes('"channel":"books"') && l.includes('"action"'))
const stamp = (line: string, ts: number) => line.replace(/"ts":"\d+"/, `"ts":"${ts}"`)
const sentAt = new Map<number, number>()
let replayed: () => void = () => {}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost')
  const type = url.searchParams.get('instType')
  const body =
    url.pathname === '/api/v5/public/instruments' && (type === 'SPOT' || type === 'SWAP' || type === 'FUTURES')
      ? readFileSync(new URL(`instruments-${type}.json`, FIXTURES), 'utf8')
      : '{"code":"0","msg":"","data":[]}'
  res.writeHead(200, { 'content-type': 'application/json' }).end(body)
})
const wss = new WebSocketServer({ server })
const drained = async (ws: WebSocket) => {
  while (ws.bufferedAmount > 4_000_000) await new Promise((r) => setTimeout(r, 1))
}

async function burst(ws: WebSocket) {
  for (let r = 0; r < ROUNDS; r++) {
    const last = r === ROUNDS - 1
    for (let i = 0; i < session.length; i++) ws.send(last && i === session.length - 1 ? stamp(session[i], SENTINEL) : session[i])
    await drained(ws)
  }
}

async function paced(ws: WebSocket) {
  // Two rounds: the first warms the contender up, the second (exchange times 2e12 + index) is measured.
  for (let r = 0; r < 2; r++)
    for (let i = 0; i < session.length; i++) {
      await new Promise((resolve) => setTimeout(resolve, PACE_MS))
      const ts = (r + 1) * 1e12 + i
      sentAt.set(ts, now())
      ws.send(stamp(session[i], ts))
    }
  replayed()
}

let dropped = false
async function gap(ws: WebSocket) {
  for (let i = 0; i < session.length; i++) if (dropped || i !== 4) ws.send(session[i])
  dropped = true // a resubscription gets the whole session
  replayed()
}

wss.on('connection', (ws, req) => {
  const mode = req.url?.startsWith('/paced') ? paced : req.url?.startsWith('/gap') ? gap : burst
  ws.on('message', (data) => {
    const text = data.toString()
    if (text === 'ping') return void ws.send('pong')
    const request = JSON.parse(text)
    if (request.op !== 'subscribe') return
    for (const arg of request.args) ws.send(JSON.stringify({ event: 'subscribe', arg }))
    mode(ws).catch(() => ws.terminate())
  })
})
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
const port = (server.address() as { port: number }).port

interface Report {
  kind: string
  published: number
  rssReadyMB: number
  rssMB: number
  maxRssMB: number
  heapUsedMB: number
  cpuMs?: number
  errors: number
  top: { bids: number[][]; asks: number[][] } | null
  seen?: [number, number][]
}

function run(kind: string, mode: 'burst' | 'paced' | 'gap'): Promise<Report> {
  // execArgv [] keeps tsx out of the child: its memory is the contender's.
  const child = fork(new URL('connector-consumer.mjs', import.meta.url), [kind, mode, String(port)], { stdio: 'inherit', execArgv: [] })
  replayed = () => {
    replayed = () => {} // once: a resubscription replays again
    setTimeout(() => child.connected && child.send('done'), 200)
  }
  return new Promise((resolve, reject) => {
    child.once('message', (report) => resolve(report as Report))
    child.once('exit', (code) => code !== 0 && reject(new Error(`${kind} ${mode} exited ${code}`)))
  })
}

const q = (values: number[], p: number) => values[Math.min(values.length - 1, Math.floor(p * values.length))]
const messages = ROUNDS * session.length
const rows: string[] = []
for (let repeat = 0; repeat < REPEAT; repeat++)
  for (const kind of ['floor', 'ours', 'ccxt']) {
    const b = await run(kind, 'burst')
    sentAt.clear()
    const p = await run(kind, 'paced')
    dropped = false
    const g = await run(kind, 'gap')
    const gapBook = kind === 'floor' ? 'n/a' : JSON.stringify(g.top) === JSON.stringify(b.top) ? 'right' : 'WRONG'
    const lat = (p.seen ?? [])
      .filter(([ts]) => ts >= 2e12 && sentAt.has(ts))
      .map(([ts, at]) => at - sentAt.get(ts)!)
      .sort((x, y) => x - y)
    const row = {
      kind,
      messages,
      cpuMs: Math.round(b.cpuMs!),
      usPerMessage: +(((b.cpuMs ?? 0) * 1000) / messages).toFixed(1),
      messagesPerCpuSecond: Math.round(messages / ((b.cpuMs ?? 1) / 1000)),
      booksPublished: b.published,
      rssReadyMB: +b.rssReadyMB.toFixed(1),
      rssAfterMB: +b.rssMB.toFixed(1),
      maxRssMB: +b.maxRssMB.toFixed(1),
      gapNoticed: g.errors,
      gapFinalBook: gapBook,
      latencySamples: lat.length,
      sendToPublishMs: lat.length ? { p50: +q(lat, 0.5).toFixed(3), p99: +q(lat, 0.99).toFixed(3), max: +lat[lat.length - 1].toFixed(3) } : null
    }
    console.log(JSON.stringify(row))
    rows.push(
      `| ${kind} | ${row.usPerMessage} | ${row.messagesPerCpuSecond.toLocaleString('en')} | ${row.rssReadyMB} / ${row.maxRssMB} | ${row.sendToPublishMs?.p50} / ${row.sendToPublishMs?.p99} (${lat.length}) | ${kind === 'floor' ? 'n/a' : `${g.errors ? 'yes' : 'no'}, book ${gapBook}`} |`
    )
  }
console.log(
  `\n| contender | µs CPU per message | messages per CPU second | RSS ready / peak MB | send → publish p50 / p99 ms (samples) | lost update noticed, final book |\n|---|---|---|---|---|---|`
)
console.log(rows.join('\n'))
wss.close()
server.close()
