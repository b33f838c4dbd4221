// Delta frames, the decision (#20, npm run bench:delta): a structural patch of changed keys
// against a Fossil delta of the encoded bytes (what Centrifugo uses), on the two kinds of topic
// the issue names: tickers (the demo feed's) and books (the recorded OKX session through the real
// connector, top 20 a side). For each event after a topic's first: bytes of the full data, of a
// structural patch and of a Fossil delta, in MessagePack and in JSON; and the CPU to make and to
// apply each. Nothing here is on the wire yet: this is the measurement that picks one.
import { Encoder, decode } from '@msgpack/msgpack'
import { applyDelta, applyStringDelta, createDelta, createStringDelta } from 'fossil-delta'
import { books, tickers, type Json } from './streams.ts'

const encoder = new Encoder()
const msgpack = (v: unknown) => encoder.encode(v)

/** Changed and added keys with their new values, `$del` for removed ones, nested objects patched; arrays whole. */
function patch(prev: Json, cur: Json): Json {
  if (!isObject(prev) || !isObject(cur)) return cur
  const out: Record<string, Json> = {}
  for (const key of Object.keys(cur)) {
    const a = prev[key]
    const b = cur[key]
    if (same(a, b)) continue
    out[key] = isObject(a) && isObject(b) ? patch(a, b) : b
  }
  const removed = Object.keys(prev).filter((k) => !(k in cur))
  if (removed.length > 0) out.$del = removed
  return out
}

function applyPatch(prev: Json, p: Json): Json {
  if (!isObject(prev) || !isObject(p)) return p
  const out: Record<string, Json> = { ...prev }
  for (const [key, value] of Object.entries(p)) {
    if (key === '$del') for (const k of value as string[]) delete out[k]
    else out[key] = isObject(out[key]) && isObject(value) ? applyPatch(out[key], value) : value
  }
  return out
}

const isObject = (v: unknown): v is Record<string, Json> => v !== null && typeof v === 'object' && !Array.isArray(v)
function same(a: Json | undefined, b: Json | undefined): boolean {
  if (a === b) return true
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => same(x, b[i]))
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a)
    return ka.length === Object.keys(b).length && ka.every((k) => same(a[k], b[k]))
  }
  return false
}

function measure(kind: string, topics: Map<string, Json[]>) {
  const pairs: [Json, Json][] = []
  for (const events of topics.values()) for (let i = 1; i < events.length; i++) pairs.push([events[i - 1], events[i]])
  const sum = { full: 0, patch: 0, fossil: 0, fullJson: 0, patchJson: 0, fossilJson: 0 }
  for (const [prev, cur] of pairs) {
    sum.full += msgpack(cur).length
    sum.patch += msgpack(patch(prev, cur)).length
    sum.fossil += createDelta(msgpack(prev), msgpack(cur)).length
    sum.fullJson += JSON.stringify(cur).length
    sum.patchJson += JSON.stringify(patch(prev, cur)).length
    sum.fossilJson += JSON.stringify(createStringDelta(JSON.stringify(prev), JSON.stringify(cur))).length // as a JSON string field
  }
  // Correctness before speed: every delta applied gives the event back.
  for (const [prev, cur] of pairs) {
    if (!same(applyPatch(prev, patch(prev, cur)), cur)) throw new Error(`${kind}: a patch did not round-trip`)
    const bytes = applyDelta(msgpack(prev), createDelta(msgpack(prev), msgpack(cur)))
    if (!same(decode(bytes) as Json, cur)) throw new Error(`${kind}: a Fossil delta did not round-trip`)
    if (applyStringDelta(JSON.stringify(prev), createStringDelta(JSON.stringify(prev), JSON.stringify(cur))) !== JSON.stringify(cur))
      throw new Error(`${kind}: a Fossil string delta did not round-trip`)
  }
  const time = (fn: () => void) => {
    for (let r = 0; r < 2; r++) fn() // warm
    const t0 = process.cpuUsage()
    fn()
    const c = process.cpuUsage(t0)
    return +((c.user + c.system) / pairs.length).toFixed(2)
  }
  const encodedPairs = pairs.map(([a, b]) => [msgpack(a), msgpack(b)] as const)
  const patches = pairs.map(([a, b]) => patch(a, b))
  const deltas = encodedPairs.map(([a, b]) => createDelta(a, b))
  const n = pairs.length
  return {
    kind,
    events: n,
    bytesPerEvent: {
      msgpack: { full: Math.round(sum.full / n), patch: Math.round(sum.patch / n), fossil: Math.round(sum.fossil / n) },
      json: { full: Math.round(sum.fullJson / n), patch: Math.round(sum.patchJson / n), fossil: Math.round(sum.fossilJson / n) }
    },
    usPerEvent: {
      // Made once per event (per topic and filter group), applied by every receiver.
      patchMake: time(() => {
        for (const [a, b] of pairs) patch(a, b)
      }),
      fossilMake: time(() => {
        for (const [a, b] of encodedPairs) createDelta(a, b)
      }),
      patchApply: time(() => {
        for (let i = 0; i < n; i++) applyPatch(pairs[i][0], patches[i])
      }),
      fossilApply: time(() => {
        for (let i = 0; i < n; i++) applyDelta(encodedPairs[i][0], deltas[i])
      })
    }
  }
}

const rows = [measure('ticker (demo feed)', tickers()), measure('book (recorded OKX, top 20)', await books())]
for (const r of rows) console.log(JSON.stringify(r))
console.log(
  '\n| topic | events | MessagePack full / patch / Fossil bytes | JSON full / patch / Fossil bytes | µs to make: patch / Fossil | µs to apply: patch / Fossil |\n|---|---|---|---|---|---|'
)
for (const r of rows) {
  const b = r.bytesPerEvent
  const u = r.usPerEvent
  console.log(
    `| ${r.kind} | ${r.events} | ${b.msgpack.full} / ${b.msgpack.patch} / ${b.msgpack.fossil} | ${b.json.full} / ${b.json.patch} / ${b.json.fossil} | ${u.patchMake} / ${u.fossilMake} | ${u.patchApply} / ${u.fossilApply} |`
  )
}
