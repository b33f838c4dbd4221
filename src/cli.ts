#!/usr/bin/env node
// realtime sub | pub | ping | bench: the client SDK from a terminal.
import { parseArgs } from 'node:util'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Histogram } from './core/histogram.js'
import { LiveClient, type Codec, type LiveEvent } from './client/index.js'
import { replayCommand, ReplayUsageError } from './replay-command.js'

const USAGE = `usage: realtime <command> [options]

  sub <pattern>          print events of the topics matching <pattern> (* one token, > the rest)
      --json             one JSON object per line instead of the readable form
      --count N          exit after N events
      --no-snapshot      start with live events, without each topic's last value
      --filter EXPR      only events whose data passes EXPR, e.g. 'netBps >= 10 and symbol in ["BTC-USD"]'
      --delta            events travel as deltas against the one before (printed whole)
      --retry            keep reconnecting (and recovering) when the server is away;
                         without it an unreachable server or a disconnect is exit 1
  pub <topic> <json>     publish <json> on <topic>; prints the seq and epoch
  ping                   round-trip percentiles of latency probes
      --count N          probes to send (default 100)
      --interval MS      pause between probes (default 10)
  bench [workload...]    run the benchmark (npm run bench) in a checkout of the repository;
      --quick            workloads: floor probe fanout filters deltas idle memory hooks arbitrage books backplane
  replay <dir>           a recording (RECORD_DIR) through the connectors and the engine, offline:
                         every opportunity event; engine settings from the environment
      --from T --to T    only this span (ISO 8601 or epoch ms; what comes before still replays)
      --speed max|N      as fast as it goes (default) or N times the recorded pace
      --json             one {topic, data} per line
      --report FILE      a summary per opportunity and per class: FILE.json, or FILE (CSV)
                         and FILE-classes.csv
      --hooks            through the server's plugins (HOOKS, MODELS, the scorer), as
                         REPLAY_DIR serves it, so their fields are in the events
  help                   this text (also --help; through npx: npx realtime help)

common options:
  --url URL              live endpoint (default $REALTIME_URL or ws://127.0.0.1:8765/ws/live)
  --token TOKEN          credential (default $REALTIME_TOKEN)
  --codec msgpack|json   frame codec (default msgpack)

exit codes: 0 done, 1 refused or unreachable (the reason is printed), 2 usage
`

class UsageError extends Error {}

// C0 and C1 controls and DEL: what a terminal acts on (titles, screen clears, OSC 52 clipboard
// writes); and the bidirectional marks and overrides, which reorder what the user reads.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g

/**
 * Text from the server as the terminal may see it: controls as \u escapes (inside JSON strings
 * that is the same JSON), so a server can never drive the user's terminal.
 */
function printable(text: string): string {
  return text.replace(CONTROLS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

const out = (line: string) => process.stdout.write(`${printable(line)}\n`)
const warn = (line: string) => process.stderr.write(`realtime: ${printable(line)}\n`)

const { values: flags, positionals } = (() => {
  try {
    return parseArgs({
      allowPositionals: true,
      options: {
        url: { type: 'string', default: process.env.REALTIME_URL ?? 'ws://127.0.0.1:8765/ws/live' },
        token: { type: 'string', default: process.env.REALTIME_TOKEN },
        codec: { type: 'string', default: 'msgpack' },
        json: { type: 'boolean', default: false },
        count: { type: 'string' },
        interval: { type: 'string', default: '10' },
        'no-snapshot': { type: 'boolean', default: false },
        filter: { type: 'string' },
        delta: { type: 'boolean', default: false },
        retry: { type: 'boolean', default: false },
        quick: { type: 'boolean', default: false },
        from: { type: 'string' },
        to: { type: 'string' },
        speed: { type: 'string' },
        report: { type: 'string' },
        hooks: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false }
      }
    })
  } catch (err) {
    fail(new UsageError((err as Error).message))
  }
})()

function fail(err: unknown): never {
  if (err instanceof UsageError) process.stderr.write(`realtime: ${printable(err.message)}\n\n${USAGE}`)
  else warn(`${(err as { code?: string }).code ? `${(err as { code: string }).code}: ` : ''}${(err as Error).message}`)
  process.exit(err instanceof UsageError ? 2 : 1)
}

function nonNegativeInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name} must be a non-negative integer, got "${value}"`)
  return n
}

/**
 * A client whose first connection is open. Without --retry an unreachable server fails at its
 * first attempt (the SDK alone would retry for ever); errors are printed once connected.
 */
async function connected(): Promise<LiveClient> {
  if (flags.codec !== 'msgpack' && flags.codec !== 'json') throw new UsageError(`--codec must be msgpack or json, got "${flags.codec}"`)
  const live = new LiveClient({ url: flags.url!, codec: flags.codec as Codec, token: flags.token })
  if (!flags.retry) {
    await new Promise<void>((resolve, reject) => {
      const stop = live.on('close', ({ code, reason }) => {
        stop()
        live.close()
        reject(Object.assign(new Error(`cannot reach ${flags.url}${reason ? `: ${reason}` : ''} (${code})`), { code: 'unavailable' }))
      })
      live.ready().then(() => {
        stop()
        resolve()
      }, reject)
    })
  } else await live.ready()
  live.on('error', (err) => warn(err.message))
  return live
}

const time = (ms: number) => (Number.isFinite(ms) && Math.abs(ms) < 8.64e15 ? new Date(ms).toISOString().slice(11, 23) : String(ms))

function printEvent(e: LiveEvent): void {
  if (flags.json) out(JSON.stringify(e))
  else out(`${time(e.ts)} ${e.topic} #${e.seq}${e.type === 'snapshot' ? ' (snapshot)' : ''} ${JSON.stringify(e.data)}`)
}

async function sub(pattern: string | undefined): Promise<void> {
  if (pattern === undefined) throw new UsageError('sub needs a <pattern>')
  const limit = nonNegativeInt('count', flags.count, Infinity)
  const live = await connected()
  let seen = 0
  live.on('close', ({ code, reason }) => {
    warn(`disconnected (${code}${reason ? ` ${reason}` : ''})${flags.retry ? '; reconnecting' : ''}`)
    if (flags.retry) return
    live.close()
    process.exit(1)
  })
  await live.subscribe(
    pattern,
    (e) => {
      printEvent(e)
      if (++seen >= limit) {
        live.close()
        process.exitCode = 0
      }
    },
    {
      snapshot: !flags['no-snapshot'],
      filter: flags.filter,
      delta: flags.delta,
      onGap: (gap) => warn(`gap on ${gap.topic ?? gap.pattern}: ${gap.reason}${gap.expected ? ` (expected #${gap.expected}, got #${gap.received})` : ''}`)
    }
  )
  process.once('SIGINT', () => live.close())
}

async function pub(topic: string | undefined, json: string | undefined): Promise<void> {
  if (topic === undefined || json === undefined) throw new UsageError('pub needs a <topic> and <json> data')
  let data: unknown
  try {
    data = JSON.parse(json)
  } catch {
    throw new UsageError(`data is not JSON: ${json.slice(0, 80)}`)
  }
  const live = await connected()
  try {
    const { seq, epoch } = await live.publish(topic, data)
    out(flags.json ? JSON.stringify({ topic, seq, epoch }) : `${topic} #${seq} (epoch ${epoch})`)
  } finally {
    live.close()
  }
}

async function ping(): Promise<void> {
  const count = nonNegativeInt('count', flags.count, 100)
  const interval = nonNegativeInt('interval', flags.interval, 10)
  const live = await connected()
  const rtt = new Histogram()
  try {
    for (let i = 0; i < count; i++) {
      rtt.record(await live.probe())
      if (interval > 0) await new Promise((r) => setTimeout(r, interval))
    }
  } finally {
    live.close()
  }
  const ms = (p: number) => rtt.percentile(p).toFixed(3)
  const summary = { probes: count, p50: ms(50), p90: ms(90), p99: ms(99), max: rtt.max.toFixed(3) }
  process.stdout.write(
    flags.json
      ? `${JSON.stringify(Object.fromEntries(Object.entries(summary).map(([k, v]) => [k, Number(v)])))}\n`
      : `${count} probes to ${flags.url}: p50 ${summary.p50} ms, p90 ${summary.p90} ms, p99 ${summary.p99} ms, max ${summary.max} ms\n`
  )
}

function bench(workloads: string[]): Promise<void> {
  const root = fileURLToPath(new URL('..', import.meta.url))
  if (!existsSync(`${root}/bench/run.ts`)) throw new Error('bench needs a checkout of the repository (bench/ is not in the package)')
  const child = spawn('npm', ['run', 'bench', ...(flags.quick ? ['--', '--quick'] : [])], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, BENCH_ONLY: workloads.join(',') }
  })
  return new Promise((resolve) =>
    child.once('exit', (code) => {
      process.exitCode = code ?? 1
      resolve()
    })
  )
}

const [command, ...rest] = positionals
const commands: Record<string, () => Promise<void>> = {
  sub: () => sub(rest[0]),
  pub: () => pub(rest[0], rest[1]),
  ping,
  bench: () => bench(rest),
  replay: async () => {
    if (rest[0] === undefined) throw new UsageError('replay needs the recording directory')
    await replayCommand({ dir: rest[0], ...flags, env: process.env, out, warn }).catch((err: Error) => {
      throw err instanceof ReplayUsageError ? new UsageError(err.message) : err
    })
  }
}
if (flags.help || command === 'help') {
  process.stdout.write(USAGE)
} else if (command === undefined || commands[command] === undefined) {
  fail(new UsageError(command === undefined ? 'no command' : `unknown command "${command}"`))
} else {
  commands[command]().catch(fail)
}
