// GET /metrics: the Prometheus figures follow real traffic exactly.
import t from 'tap'
import { encode } from '@msgpack/msgpack'
import { startServer, TestClient, flood, scrape, until } from './helper.ts'

/** Counts what a client receives: frames, and the bytes they took on the wire (2-byte headers below 126). */
function meter(client: TestClient) {
  const seen = { frames: 0, wireBytes: 0, largest: 0 }
  client.ws.on('message', (data: Buffer) => {
    seen.frames++
    seen.wireBytes += data.length + 2
    seen.largest = Math.max(seen.largest, data.length)
  })
  return seen
}

t.test('connections, frames, bytes, subscriptions and publish-to-send follow the traffic', async (t) => {
  const { url, http } = await startServer(t)
  const res = await fetch(`${http}/metrics`)
  t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
  await res.text()

  const binary = await TestClient.open(url)
  const text = await TestClient.open(url, { path: '/ws/live?codec=json', codec: 'json' })
  const publisher = await TestClient.open(url)
  const received = [meter(binary), meter(text), meter(publisher)]
  let sentBytes = 0
  const send = (client: TestClient, frame: object) => {
    const bytes = client.codec === 'msgpack' ? encode(frame).length : Buffer.byteLength(JSON.stringify(frame))
    sentBytes += bytes
    return client.request(frame)
  }
  await send(binary, { type: 'subscribe', id: 1, topic: 'px.*' })
  await send(text, { type: 'subscribe', id: 1, topic: 'px.a' })
  for (let i = 0; i < 3; i++) t.equal((await send(publisher, { type: 'publish', id: i, topic: 'px.a', data: { i } })).type, 'ack')
  await binary.take(3)
  await text.take(3)
  t.equal((await send(publisher, { type: 'ping', id: 9 })).type, 'pong')
  publisher.ws.send(Buffer.from([0xc1]))
  sentBytes += 1
  t.equal((await publisher.next()).type, 'error', 'a frame that is not MessagePack')

  let m = await scrape(http)
  t.equal(m.get('realtime_connections'), 3)
  t.equal(m.get('realtime_connects_total'), 3)
  t.equal(m.get('realtime_subscriptions'), 2)
  t.equal(m.get('realtime_topics'), 1)
  t.equal(m.get('realtime_frames_in_total{type="subscribe"}'), 2)
  t.equal(m.get('realtime_frames_in_total{type="publish"}'), 3)
  t.equal(m.get('realtime_frames_in_total{type="ping"}'), 1)
  t.equal(m.get('realtime_frames_in_total{type="invalid"}'), 1)
  t.equal(m.get('realtime_frames_out_total{type="event"}'), 6, 'each of 3 events to 2 subscribers')
  t.equal(m.get('realtime_frames_out_total{type="ack"}'), 5)
  t.equal(m.get('realtime_frames_out_total{type="pong"}'), 1)
  t.equal(m.get('realtime_frames_out_total{type="error"}'), 1)
  t.equal(m.get('realtime_bytes_in_total'), sentBytes)
  t.ok(
    received.every((r) => r.largest < 126),
    'every frame fits a 2-byte header'
  )
  t.equal(
    m.get('realtime_bytes_out_total'),
    received.reduce((sum, r) => sum + r.wireBytes, 0)
  )
  t.equal(m.get('realtime_publish_to_send_seconds_count'), 3, 'one observation per event, not per subscriber')
  t.equal(m.get('realtime_publish_to_send_seconds_bucket{le="+Inf"}'), 3)
  t.ok(m.get('realtime_publish_to_send_seconds_bucket{le="0.00005"}')! <= m.get('realtime_publish_to_send_seconds_bucket{le="1"}')!, 'buckets are cumulative')
  t.equal(m.get('realtime_publish_to_send_seconds_bucket{le="1"}'), 3, 'a local fan-out takes well under a second')
  t.equal(m.get('realtime_backplane_up'), 1)
  t.equal(m.get('realtime_ready'), 1)
  t.ok(m.has('nodejs_eventloop_lag_seconds'), 'event loop lag')
  t.ok(m.has('process_resident_memory_bytes'), 'process metrics')

  binary.ws.close(1000)
  text.ws.close(4000, 'bye')
  await until(async () => (await scrape(http)).get('realtime_connections') === 1, 'the closes are counted')
  m = await scrape(http)
  t.equal(m.get('realtime_disconnects_total{code="1000"}'), 1)
  t.equal(m.get('realtime_disconnects_total{code="4000"}'), 1, "the SDK's code for a silent server")
  t.equal(m.get('realtime_subscriptions'), 0, 'subscriptions are freed with their connection')
  publisher.close()
})

t.test('hook calls, errors and latency', async (t) => {
  const { url, http, app } = await startServer(t)
  app.liveHooks.onPublish({ name: 'picky', topics: 'h.>' }, async (_topic, data) => {
    if ((data as { bad?: boolean }).bad) throw new Error('refused')
  })
  const c = await TestClient.open(url)
  for (const data of [{ ok: 1 }, { bad: true }, { ok: 2 }]) await c.request({ type: 'publish', id: 1, topic: 'h.x', data })
  const m = await scrape(http)
  t.equal(m.get('realtime_hook_calls_total{hook="picky",stage="publish"}'), 3)
  t.equal(m.get('realtime_hook_errors_total{hook="picky",stage="publish"}'), 1)
  t.equal(m.get('realtime_hook_timeouts_total{hook="picky",stage="publish"}'), 0)
  t.equal(m.get('realtime_hook_breaker_open{hook="picky",stage="publish"}'), 0)
  t.equal(m.get('realtime_hook_latency_seconds_count{hook="picky",stage="publish"}'), 2, 'every successful asynchronous call is timed')
  c.close()
})

t.test('venue health from a publisher: one with a field that is not its type is refused; fields left out get no sample', async (t) => {
  const { url, http } = await startServer(t)
  const c = await TestClient.open(url)
  t.teardown(() => c.close())
  const bad = { exchange: 'acme', state: 'up', messages: 'many', gaps: 3 }
  t.same(await c.request({ type: 'publish', id: 1, topic: 'venue.acme', data: bad }), {
    type: 'error',
    id: 1,
    code: 'bad_request',
    message: '"venue.acme": data.messages must be a number from 0'
  })
  await c.request({ type: 'publish', id: 2, topic: 'venue.acme', data: { exchange: 'acme', state: 'up', gaps: 3, clockOffsetMs: null } })
  await until(
    async () => (await fetch(`${http}/metrics`)).status === 200 && (await scrape(http)).has('realtime_venue_gaps_total{exchange="acme"}'),
    'venue series'
  )
  const m = await scrape(http)
  t.equal(m.get('realtime_venue_gaps_total{exchange="acme"}'), 3)
  t.equal(m.get('realtime_venue_state{exchange="acme"}'), 2)
  for (const name of ['messages_total', 'resyncs_total', 'reconnects_total', 'rotations_total', 'clock_offset_seconds'])
    t.notOk(m.has(`realtime_venue_${name}{exchange="acme"}`), `${name}: not given, no sample`)
})

t.test('slow-consumer actions', async (t) => {
  const { url, http, app } = await startServer(t, { maxQueuedBytes: 64 * 1024 })
  const slow = await TestClient.open(url)
  await slow.request({ type: 'subscribe', topic: 'big' })
  slow.ws.pause()
  await flood(app, ['big'], 600, 30_000)
  slow.ws.resume()
  t.equal((await slow.closed).code, 4008)
  const m = await scrape(http)
  t.equal(m.get('realtime_slow_consumer_actions_total{action="close"}'), 1)
  t.equal(m.get('realtime_slow_consumer_actions_total{action="conflate"}'), 0)
  t.equal(m.get('realtime_disconnects_total{code="4008"}') ?? m.get('realtime_disconnects_total{code="1006"}'), 1, 'its disconnect is counted')
})

t.test('close codes clients choose cannot mint /metrics series: they count as one "other"', async (t) => {
  const { url, http } = await startServer(t)
  const clients = await Promise.all(Array.from({ length: 40 }, () => TestClient.open(url)))
  for (const [i, c] of clients.entries()) c.ws.close(3002 + i * 37, 'mine')
  await until(async () => (await scrape(http)).get('realtime_connections') === 0, 'every close counted')
  const m = await scrape(http)
  const series = [...m.keys()].filter((k) => k.startsWith('realtime_disconnects_total'))
  t.same(series, ['realtime_disconnects_total{code="other"}'], 'one series for 40 distinct codes')
  t.equal(m.get('realtime_disconnects_total{code="other"}'), 40)
})

t.test('filters and deltas: their cost, evaluations, delta state and deltas made', async (t) => {
  const { app, url, http } = await startServer(t)
  const client = await TestClient.open(url)
  t.teardown(() => client.close())
  await client.request({ type: 'subscribe', topic: 'fd.a', filter: 'i >= 0 and book.side == "bid"', delta: true, snapshot: false })
  for (let i = 0; i < 3; i++) await app.live.publish('fd.a', { i, book: { side: 'bid' } })
  await client.take(3)
  const m = await scrape(http)
  t.equal(m.get('realtime_filter_cost'), 3, 'i reads one field, book.side two')
  t.equal(m.get('realtime_filter_evaluations_total'), 3)
  t.equal(m.get('realtime_deltas_total'), 2, 'the first event whole, then one delta each')
  t.ok(m.get('realtime_delta_state_bytes')! > 160, 'the topic state and the connection entry')
  client.close()
  await until(async () => (await scrape(http)).get('realtime_delta_state_bytes') === 0, 'given back with the subscription')
  t.equal((await scrape(http)).get('realtime_filter_cost'), 0)
})
