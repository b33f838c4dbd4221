// The venue-health table behind the `venues` method and the realtime_venue_* series, on a fake clock.
import t from 'tap'
import { MAX_VENUES, VENUE_FORGET_MS, VENUE_STALE_MS, VenueTable } from '../src/plugins/venues.ts'
import type { VenueHealth } from '../src/market/events.ts'
import { startServer, until } from './helper.ts'

const health = (exchange: string, state: VenueHealth['state'] = 'up') => ({ exchange, state }) as VenueHealth

t.test('64 fake venue names published once never keep a real venue out: it takes the place of a stale one', async (t) => {
  const table = new VenueTable()
  for (let i = 0; i < MAX_VENUES; i++) t.ok(table.update(health(`fake${i}`), 1000 + i))
  t.notOk(table.update(health('binance'), 2000), 'while every name is fresh, the table is full')
  const later = 1000 + MAX_VENUES + VENUE_STALE_MS
  t.ok(table.update(health('binance'), later), 'once the oldest fake is stale, the real venue replaces it')
  const names = table.list(later).map((v) => v.exchange)
  t.equal(names.length, MAX_VENUES, 'still at most MAX_VENUES')
  t.ok(names.includes('binance') && !names.includes('fake0'), 'the fake heard from longest ago went')
  // The real venue reports every second: the fakes go one by one to newcomers, it never does.
  for (let i = 1; i <= 10; i++) {
    table.update(health('binance'), later + i * 1000)
    t.ok(table.update(health(`real${i}`), later + i * 1000), `newcomer ${i} admitted`)
  }
  t.ok(
    table.list(later + 10_000).some((v) => v.exchange === 'binance' && v.state === 'up' && !v.stale),
    'the reporting venue stays, up'
  )
})

t.test('a venue not heard from is down after VENUE_STALE_MS and forgotten after VENUE_FORGET_MS', async (t) => {
  const table = new VenueTable()
  table.update(health('kraken'), 0)
  table.update(health('okx'), VENUE_FORGET_MS / 2)
  t.match(table.list(VENUE_STALE_MS + 1), [{ exchange: 'kraken', state: 'down', stale: true }, { exchange: 'okx' }])
  t.same(
    table.list(VENUE_FORGET_MS + 1).map((v) => v.exchange),
    ['okx'],
    'kraken forgotten, okx (heard later) kept'
  )
  t.same(table.list(VENUE_FORGET_MS * 2), [], 'then okx too')
})

t.test('the plugin feeds the table from venue.<exchange> events whose data names that exchange', async (t) => {
  const { app } = await startServer(t)
  await app.live.publish('venue.kraken', { exchange: 'kraken', state: 'up' })
  // Refused where they enter (plugins/market-data.ts): the table never sees them.
  await t.rejects(app.live.publish('venue.okx', { exchange: 'binance', state: 'up' }), {
    code: 'bad_request',
    message: '"venue.okx": data.exchange must be "okx", the topic\'s'
  })
  await t.rejects(app.live.publish('venue.okx', null), { code: 'bad_request', message: '"venue.okx": data must be an object' })
  await until(() => app.liveVenues.list().length === 1, 'kraken listed')
  t.match(app.liveVenues.list(), [{ exchange: 'kraken', state: 'up', stale: false }])
})
