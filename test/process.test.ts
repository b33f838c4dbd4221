// The server process as PM2 runs it: configuration errors, graceful shutdown, and the original Python client.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { TestClient, startProcess, root } from './helper.ts'

const serverArgs = ['--import=tsx', 'src/server.ts']

t.test('a bad environment value stops start-up with one line naming it', async (t) => {
  const result = spawnSync(process.execPath, serverArgs, { cwd: root, env: { ...process.env, PORT: 'eighty' }, encoding: 'utf8' })
  t.equal(result.status, 1)
  t.equal(result.stderr.trim().split('\n').length, 1, 'one line')
  t.equal(result.stderr.trim(), 'Invalid configuration: PORT="eighty" is not valid; expected an integer from 0 to 65535')
  const other = spawnSync(process.execPath, serverArgs, { cwd: root, env: { ...process.env, SLOW_CONSUMER: 'drop' }, encoding: 'utf8' })
  t.equal(other.status, 1)
  t.equal(other.stderr.trim(), 'Invalid configuration: SLOW_CONSUMER="drop" is not valid; expected one of close, conflate')
})

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  t.test(`${signal}: clients are closed with 1001, logs flushed, exit code 0`, async (t) => {
    const server = startProcess({ SHUTDOWN_GRACE: '1000' })
    t.teardown(() => {
      server.child.kill('SIGKILL')
    })
    const port = await server.port
    const clients = await Promise.all([1, 2, 3].map(() => TestClient.open(`ws://127.0.0.1:${port}`)))
    for (const c of clients) t.match(await c.request({ type: 'ping' }), { type: 'pong' })
    server.child.kill(signal)
    const closes = await Promise.all(clients.map((c) => c.closed))
    t.same(
      closes.map((c) => c.code),
      [1001, 1001, 1001]
    )
    // Exit code 0 is a shutdown that finished inside SHUTDOWN_GRACE (past it the process exits 1).
    t.same(await server.exited, { code: 0, signal: null })
    t.match(server.output(), /"msg":"closed"/, 'the last log line made it out')
    const urls = new RegExp(`"websocket":"ws://127\\.0\\.0\\.1:${port}/ws/live","dashboard":"http://127\\.0\\.0\\.1:${port}/dashboard/"`)
    t.match(server.output(), urls, 'the start-up log names the WebSocket and dashboard URLs')
    t.match(server.output(), /no feed runs in this process/, 'and says that no feed runs')
  })
}

const python = '/usr/bin/python3'
const hasPython = existsSync(python) && spawnSync(python, ['-c', 'import websockets, msgpack']).status === 0
const requirePython = process.env.REQUIRE_PYTHON_CLIENT === '1'

t.test(
  'the original Python client gets its reply',
  {
    skip: hasPython || requirePython ? false : 'needs /usr/bin/python3 with websockets and msgpack (Debian python3-websockets, python3-msgpack)'
  },
  async (t) => {
    const server = startProcess({})
    t.teardown(() => {
      server.child.kill('SIGKILL')
    })
    const port = await server.port
    // The snippet as the old clients run it, with only the port changed (8765 may be taken on a test machine).
    const snippet = `
import asyncio, time, msgpack, websockets
async def main():
    async with websockets.connect("ws://localhost:${port}") as ws:
        await ws.send(msgpack.packb({"type": "request", "timestamp": time.time()}))
        reply = msgpack.unpackb(await ws.recv(), raw=False)
        print(reply)
        assert reply["type"] == "response" and "serverTime" in reply
asyncio.run(main())
`
    const result = spawnSync(python, ['-c', snippet], { encoding: 'utf8', timeout: 20_000 })
    t.equal(result.status, 0, result.stderr)
    t.match(result.stdout, /'type': 'response', 'timestamp': \d+\.\d+, 'serverTime': \d+/)
  }
)
