// The baseline (plain JavaScript, as run): a minimal raw `ws` server speaking the subset of the protocol the benchmark uses,
// with encode-once broadcast and nothing else (no validation, history, corking or slow-consumer policy).
import { WebSocketServer } from 'ws'
import { Decoder, Encoder } from '@msgpack/msgpack'

const port = Number(process.env.PORT ?? 0)
const wss = new WebSocketServer({ port, host: '127.0.0.1', maxPayload: 65536, perMessageDeflate: false })
const encoder = new Encoder()
const decoder = new Decoder()
const subscribers = new Map()
const seqs = new Map()
const epoch = 'raw'

wss.on('connection', (ws) => {
  ws.on('message', (data) => {
    const frame = decoder.decode(data)
    switch (frame.type) {
      case 'request':
        ws.send(encoder.encode({ type: 'response', id: frame.id, timestamp: frame.timestamp, serverTime: Date.now() }))
        break
      case 'ping':
        ws.send(encoder.encode({ type: 'pong', id: frame.id, serverTime: Date.now() }))
        break
      case 'subscribe': {
        let set = subscribers.get(frame.topic)
        if (!set) subscribers.set(frame.topic, (set = new Set()))
        set.add(ws)
        ws.send(encoder.encode({ type: 'ack', id: frame.id, topics: [frame.topic] }))
        break
      }
      case 'publish': {
        const seq = (seqs.get(frame.topic) ?? 0) + 1
        seqs.set(frame.topic, seq)
        const buf = encoder.encode({ type: 'event', topic: frame.topic, seq, epoch, ts: Date.now(), data: frame.data })
        for (const s of subscribers.get(frame.topic) ?? []) s.send(buf)
        ws.send(encoder.encode({ type: 'ack', id: frame.id, seq, epoch }))
        break
      }
    }
  })
  ws.on('close', () => {
    for (const set of subscribers.values()) set.delete(ws)
  })
})
wss.on('listening', () => process.stdout.write(`listening ${wss.address().port}\n`))
