// Real redis-server processes on ephemeral ports, which tests can kill and restart.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { freePort, sleep } from './helper.ts'

interface Teardown {
  teardown(fn: () => unknown): void
}

/** Why Redis tests cannot run here, or null when they can. With REQUIRE_REDIS=1 (CI) a missing binary fails instead. */
export function redisUnavailable(): string | null {
  if (spawnSync('redis-server', ['--version']).status === 0) return null
  const reason = 'needs redis-server (Debian package redis-server)'
  if (process.env.REQUIRE_REDIS === '1') throw new Error(`REQUIRE_REDIS=1 but the tests cannot run: ${reason}`)
  return reason
}

export interface TestRedis {
  url: string
  /** A client for test commands (CLIENT KILL, inspection). */
  admin: Redis
  /** SIGKILLs the server: with persistence off its data is gone. */
  kill(): Promise<void>
  start(): Promise<void>
}

/** A redis-server of the test's own; `persistent` turns on the append-only file with fsync always. */
export async function startRedis(t: Teardown, { persistent = false } = {}): Promise<TestRedis> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'live-redis-'))
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir, '--appendonly', persistent ? 'yes' : 'no', '--appendfsync', 'always']
  let child: ChildProcess | null = null
  const url = `redis://127.0.0.1:${port}`
  const admin = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: null })
  admin.on('error', () => {})
  const redis: TestRedis = {
    url,
    admin,
    async start() {
      child = spawn('redis-server', args, { stdio: 'ignore' })
      for (let i = 0; i < 100; i++) {
        const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
        probe.on('error', () => {})
        const ok = await probe
          .connect()
          .then(() => probe.ping())
          .then(
            () => true,
            () => false
          )
        probe.disconnect()
        if (ok) return
        await sleep(50)
      }
      throw new Error(`redis-server on port ${port} did not start`)
    },
    async kill() {
      const c = child
      child = null
      if (c === null || c.exitCode !== null) return
      await new Promise((resolve) => {
        c.once('exit', resolve)
        c.kill('SIGKILL')
      })
    }
  }
  await redis.start()
  await admin.connect()
  t.teardown(async () => {
    admin.disconnect()
    await redis.kill()
  })
  return redis
}
