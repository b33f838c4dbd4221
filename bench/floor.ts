// What this machine allows any server, measured in the same invocation as the workloads:
//   spin    a process that never yields, reading the clock: every gap is time the host or kernel
//           took the CPU away. A request in flight during a 2 ms gap is 2 ms late whatever the server.
//   writes  one process writing 100 B to each of 900 loopback TCP sockets whose reader is another
//           process: the least time one event takes to leave for 900 subscribers (one send each).
// Prints one JSON line. Loopback only, bounded in time.
import { createServer, connect, type Socket } from 'node:net'
import { spawn } from 'node:child_process'

const [mode, arg] = process.argv.slice(2)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function spin(seconds: number) {
  const gaps: number[] = []
  const start = performance.now()
  let last = start
  while (last - start < seconds * 1000) {
    const t = performance.now()
    if (t - last > 0.1) gaps.push(t - last)
    last = t
  }
  gaps.sort((a, b) => b - a)
  const lostMs = gaps.reduce((sum, g) => sum + g, 0)
  return {
    seconds,
    over1ms: gaps.filter((g) => g > 1).length,
    over2ms: gaps.filter((g) => g > 2).length,
    worstMs: Number((gaps[0] ?? 0).toFixed(2)),
    lostPct: Number(((lostMs / (seconds * 1000)) * 100).toFixed(1))
  }
}

async function writes(sockets: number) {
  const accepted: Socket[] = []
  const server = createServer({ noDelay: true }, (s) => accepted.push(s))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const { port } = server.address() as { port: number }
  const reader = spawn(process.execPath, ['--import=tsx', new URL(import.meta.url).pathname, 'read', `${port},${sockets}`], { stdio: 'ignore' })
  while (accepted.length < sockets) await sleep(10)
  await sleep(200)
  const payload = Buffer.alloc(100)
  const perWriteUs: number[] = []
  for (let round = 0; round < 20; round++) {
    const t0 = performance.now()
    for (const s of accepted) s.write(payload)
    perWriteUs.push(((performance.now() - t0) * 1000) / sockets)
    await sleep(50)
  }
  reader.kill()
  server.close()
  for (const s of accepted) s.destroy()
  perWriteUs.sort((a, b) => a - b)
  const median = perWriteUs[perWriteUs.length / 2]
  return {
    sockets,
    perWriteUsMedian: Number(median.toFixed(1)),
    perWriteUsMin: Number(perWriteUs[0].toFixed(1)),
    oneEventMs: Number(((median * sockets) / 1000).toFixed(1))
  }
}

if (mode === 'read') {
  const [port, sockets] = arg.split(',').map(Number)
  for (let i = 0; i < sockets; i++) connect({ port, host: '127.0.0.1', noDelay: true }).on('data', () => {})
  setTimeout(() => process.exit(0), 30_000)
} else if (mode === 'spin') {
  console.log(JSON.stringify(spin(Number(arg ?? 5))))
} else if (mode === 'writes') {
  console.log(JSON.stringify(await writes(Number(arg ?? 900))))
  process.exit(0)
} else {
  throw new Error(`usage: floor.ts spin SECONDS | writes SOCKETS`)
}
