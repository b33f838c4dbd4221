// Our server for the benchmark: the compiled app (npm run build), on loopback, heartbeats off like the baseline.
import { buildApp } from '../dist/app.js'

const app = await buildApp({ heartbeatInterval: 0, slowConsumer: process.env.SLOW_CONSUMER ?? 'close' })
await app.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' })
process.stdout.write(`listening ${app.server.address().port}\n`)
