// Where the replay's CPU goes: sums a `node --cpu-prof` profile of `bench/record.ts replay` over the
// measured rounds only (from the second replay() call on; the session's making, the warm-up round and
// the JSON.parse floor's loop left out), by function (self), by file (self) and by function inclusive.
//   node --cpu-prof --cpu-prof-dir=<dir> --import=tsx bench/record.ts replay
//   node --import=tsx bench/replay-profile.ts <dir>/<the main thread's>.cpuprofile [rows]
import { readFileSync } from 'node:fs'

interface CallFrame {
  functionName: string
  url: string
}
interface Profile {
  nodes: { id: number; callFrame: CallFrame; children?: number[] }[]
  samples: number[]
  timeDeltas: number[]
}

const [file, rowsArg] = process.argv.slice(2)
if (file === undefined) throw new Error('usage: replay-profile.ts <file.cpuprofile> [rows]')
const rows = Number(rowsArg ?? 30)
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile
const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const parent = new Map<number, number>()
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
const name = (cf: CallFrame) => `${cf.functionName || '(anonymous)'} ${(cf.url || '(native)').replace(/^.*?\/(src|bench|test|demo|node_modules)\//, '$1/')}`
const self = new Map<string, number>()
const byFile = new Map<string, number>()
const inclusive = new Map<string, number>()
const add = (m: Map<string, number>, k: string, t: number) => m.set(k, (m.get(k) ?? 0) + t)
let total = 0
let replays = 0
let floorSince = true
for (let i = 0; i < profile.samples.length; i++) {
  const stack: CallFrame[] = []
  for (let id: number | undefined = profile.samples[i]; id !== undefined; id = parent.get(id)) stack.push((byId.get(id) as Profile['nodes'][0]).callFrame)
  const inReplay = stack.some((cf) => cf.functionName === 'replay' && cf.url.endsWith('record/replay.ts'))
  const inBench = !inReplay && stack.some((cf) => cf.url.endsWith('bench/record.ts'))
  // A replay() call follows the floor's loop: count them, the first is the warm-up.
  if (inReplay && floorSince) {
    replays++
    floorSince = false
  }
  if (inBench) floorSince = true
  if (replays < 2 || inBench) continue
  const t = profile.timeDeltas[i] ?? 0
  total += t
  add(self, name(stack[0]), t)
  add(byFile, (stack[0].url || '(native)').replace(/^.*?\/(src|bench|test|demo|node_modules)\//, '$1/'), t)
  const seen = new Set<string>()
  for (const cf of stack) {
    const k = name(cf)
    if (!seen.has(k)) {
      seen.add(k)
      add(inclusive, k, t)
    }
  }
}
const top = (m: Map<string, number>) =>
  [...m]
    .sort((a, b) => b[1] - a[1])
    .slice(0, rows)
    .map(([k, t]) => `${((100 * t) / total).toFixed(1).padStart(5)}%  ${k}`)
    .join('\n')
console.log(`${replays - 1} measured replays, ${(total / 1000).toFixed(0)} ms sampled`)
console.log(`\nself, by function\n${top(self)}\n\nself, by file\n${top(byFile)}\n\ninclusive\n${top(inclusive)}`)
