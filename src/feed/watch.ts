// Prints a topic's events as JSON lines: node dist/feed/watch.js [ws://127.0.0.1:8765/ws/live] ['opportunities.>']
import { WebSocket } from 'ws'

const url = process.argv[2] ?? 'ws://127.0.0.1:8765/ws/live'
const topic = process.argv[3] ?? 'opportunities.>'
const ws = new WebSocket(url, ['live.v1.json'])
ws.on('open', () => ws.send(JSON.stringify({ type: 'subscribe', id: 1, topic })))
ws.on('message', (data: Buffer) => console.log(data.toString()))
ws.on('close', (code) => { console.error(`closed ${code}`); process.exit(code === 1000 ? 0 : 1) })
ws.on('error', (err) => { console.error(err.message); process.exit(1) })
process.once('SIGINT', () => ws.close(1000))
