// GET /dashboard: a live page of opportunities, tick rates, connections and latency, built from
// static assets and the client SDK running in the browser (the compiled dist/client, with
// @msgpack/msgpack's and fossil-delta's ES modules through an import map: no bundler).
import fp from 'fastify-plugin'
import fastifyStatic from '@fastify/static'
import type { FastifyPluginAsync } from 'fastify'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ErrorCode } from '../core/protocol.js'
import { sendError } from '../http/errors.js'

const root = fileURLToPath(new URL('../../', import.meta.url))
const sdk = `${root}dist/client/`
// What the SDK shares with the server (topic patterns), where its relative import finds it.
const shared = `${root}dist/shared/`
// Its ES modules (package.json "module"; "main" is CommonJS, which browsers cannot load).
const msgpack = `${dirname(fileURLToPath(import.meta.resolve('@msgpack/msgpack/package.json')))}/dist.esm/`
// One ES module file (the SDK applies delta frames with it).
const fossil = dirname(fileURLToPath(import.meta.resolve('fossil-delta')))

/**
 * The page runs only its own scripts (and its inline import map, by hash), styles and sockets:
 * whatever a publisher puts in an event, the browser runs nothing of it, and no other site frames it.
 */
function contentSecurityPolicy(): string {
  const page = readFileSync(`${root}public/dashboard/index.html`, 'utf8')
  const importMap = /<script type="importmap">([\s\S]*?)<\/script>/.exec(page)?.[1] ?? ''
  const hash = createHash('sha256').update(importMap).digest('base64')
  return [
    "default-src 'none'",
    `script-src 'self' 'sha256-${hash}'`,
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'"
  ].join('; ')
}

const dashboard: FastifyPluginAsync = async (app) => {
  const policy = contentSecurityPolicy()
  app.addHook('onSend', async (request, reply) => {
    if (request.url.startsWith('/dashboard')) reply.header('content-security-policy', policy)
  })
  await app.register(fastifyStatic, { root: `${root}public/dashboard/`, prefix: '/dashboard/', index: 'index.html' })
  // The page's relative URLs need the trailing slash.
  app.get('/dashboard', async (_request, reply) => reply.redirect('/dashboard/'))
  await app.register(fastifyStatic, { root: msgpack, prefix: '/dashboard/vendor/msgpack/', decorateReply: false })
  await app.register(fastifyStatic, {
    root: fossil,
    prefix: '/dashboard/vendor/fossil-delta/',
    decorateReply: false,
    allowedPath: (path) => path === '/fossil-delta.js'
  })
  if (existsSync(`${sdk}index.js`)) {
    await app.register(fastifyStatic, { root: sdk, prefix: '/dashboard/sdk/', decorateReply: false })
    await app.register(fastifyStatic, { root: shared, prefix: '/dashboard/shared/', decorateReply: false })
  } else {
    // Running from source without a build (tsx): say so instead of a page that silently fails.
    app.get('/dashboard/sdk/*', async (_request, reply) =>
      sendError(reply, 503, ErrorCode.unavailable, 'the dashboard needs the compiled client SDK: run npm run build')
    )
  }
}

export default fp(dashboard, { name: 'live-dashboard', fastify: '5.x', dependencies: ['live'] })
