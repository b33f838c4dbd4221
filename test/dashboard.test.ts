// The dashboard in headless Chromium against a server running the synthetic feed: opportunity
// rows and live figures appear. The screenshot is kept in test-artifacts/ (not committed).
import { hubOf } from '../src/core/hub.ts'
import t from 'tap'
import { existsSync, mkdirSync } from 'node:fs'
import { chromium, type Browser } from 'playwright-core'
import { root, startServer } from './helper.ts'
import { startMockExchange } from './mock-exchange.ts'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const skip = existsSync(CHROMIUM) ? null : `no Chromium at ${CHROMIUM} (Debian: apt-get install chromium chromium-driver)`
if (skip !== null) {
  if (process.env.REQUIRE_CHROMIUM === '1') t.fail(`REQUIRE_CHROMIUM=1 but ${skip}`)
  else t.comment(`dashboard tests skipped: ${skip}`)
}

// The page loads the compiled SDK: npm test builds dist/ first (pretest).
if (skip === null && !existsSync(`${root}dist/client/index.js`)) t.fail('dist/client/index.js is missing: run npm test, which builds it first')

async function launch(t: { teardown(fn: () => unknown): void }): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--disable-extensions', '--no-first-run']
  })
  t.teardown(() => browser.close())
  return browser
}

t.test('live opportunities, tick rates, connections and latency appear', { skip: skip ?? false, timeout: 90_000 }, async (t) => {
  // The synthetic market for opportunities, and one real connector (against the mock) for venue health.
  const mock = await startMockExchange()
  t.teardown(() => mock.close())
  const { http } = await startServer(t, {
    arbitrage: true,
    demoFeed: true,
    demoFeedRate: 2000,
    demoFeedSeed: 7,
    feeds: 'binanceusdm:SUSHI-USDT-PERP',
    feedsEndpoints: mock.endpoints
  })
  const browser = await launch(t)
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  const errors: string[] = []
  page.on('pageerror', (err) => errors.push(err.message))
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(msg.text())
  })

  await page.goto(`${http}/`) // a plain GET of / lands on the dashboard
  t.match(page.url(), /\/dashboard\/$/)
  await page.waitForFunction(() => document.getElementById('status')?.textContent === 'live', undefined, { timeout: 15_000 })

  // An open one (closed ones stay listed, greyed, below the open ones).
  await page.waitForSelector('#opportunities tbody tr.open', { timeout: 45_000 })
  const first = await page.$eval('#opportunities tbody tr.open', (tr) => [...tr.children].map((td) => td.textContent ?? ''))
  t.match(first[0], /^[A-Z]+-[A-Z]+$/, 'a symbol')
  t.match(first[1], /^(open|update)$/, 'a status')
  t.match(first[2], /^\w+ @ \d+(\.\d+)?$/, 'where to buy')
  t.match(first[3], /^\w+ @ \d+(\.\d+)?$/, 'where to sell')
  t.ok(Number(first[5]) > 0, `a positive net spread: ${first[5]} bps`)
  t.ok(Number(first[6]) >= 0 && Number(first[7]) >= 0, `max size ${first[6]}, max profit ${first[7]}`)
  t.match(first[8], /^1k: -?\d+\.\d( \(\d+%\))? · 10k: -?\d+\.\d( \(\d+%\))? · 100k: -?\d+\.\d( \(\d+%\))?$/, `the ladder: ${first[8]}`)
  t.match(first[9], /^\d\.\d{3}$/, 'the model score')

  // The chart: a line per symbol with open opportunities, drawn on the canvas, named in the legend.
  await page.waitForFunction(() => (document.getElementById('spread-legend')?.children.length ?? 0) > 0, undefined, { timeout: 15_000 })
  const colored = await page.$eval('#spread-chart', (canvas) => {
    const c = canvas as HTMLCanvasElement
    const pixels = c.getContext('2d')!.getImageData(50, 0, c.width - 50, c.height - 24).data
    let n = 0
    // The series' colours, not the near-grey grid lines (#eef0f3) nor the grey labels.
    for (let i = 0; i < pixels.length; i += 4)
      if (pixels[i + 3] > 0 && Math.max(pixels[i], pixels[i + 1], pixels[i + 2]) - Math.min(pixels[i], pixels[i + 1], pixels[i + 2]) > 60) n++
    return n
  })
  t.ok(colored >= 12, `${colored} colored pixels of spread lines (a dot is 4 × 4)`)

  // Venue health from the real connector.
  await page.waitForFunction(() => document.querySelector('#venues tbody tr td')?.textContent === 'binanceusdm', undefined, { timeout: 15_000 })
  const venue = await page.$eval('#venues tbody tr', (tr) => [...tr.children].map((td) => td.textContent ?? ''))
  t.match(venue.slice(0, 3), ['binanceusdm', /^(up|degraded)$/, /^(1 \/ 1|0 \/ 1 \(not live: SUSHI-USDT-PERP\))$/])

  // Live figures: after a few render cycles every one holds a number.
  await page.waitForFunction(() => Number(document.getElementById('tick-rate')?.textContent?.replace(/,/g, '')) > 0, undefined, { timeout: 15_000 })
  await page.waitForFunction(() => /^\d+\.\d\d \/ \d+\.\d\d$/.test(document.getElementById('latency')?.textContent ?? ''), undefined, { timeout: 15_000 })
  await page.waitForFunction(() => Number(document.getElementById('delivery-rate')?.textContent?.replace(/,/g, '')) > 0, undefined, { timeout: 15_000 })
  t.ok(Number(await page.textContent('#connections')) >= 1, 'connections from /metrics')
  const exchanges = await page.$$eval('#ticks tbody tr', (trs) => trs.map((tr) => [tr.children[0].textContent, Number(tr.children[1].textContent)]))
  t.ok(exchanges.length >= 3, `tick rates for ${exchanges.length} exchanges`)
  t.equal(await page.isHidden('#idle'), true, 'no "nothing is being published" hint while ticks flow')

  // Closed ones are history, apart from the open ones: route, how long, why; no figures at close.
  await page.waitForSelector('#closed tbody tr', { timeout: 45_000 })
  const closed = await page.$eval('#closed tbody tr', (tr) => [...tr.children].map((td) => td.textContent ?? ''))
  t.match(closed[1], /^\w+ → \w+$/, 'the route')
  // Its best net spread while open, or – when it opened before the page did (only its close was seen).
  t.ok(closed[2] === '–' || Number(closed[2]) > 0, `its best net spread while open: ${closed[2]} bps`)
  t.match(closed[3], /^\d+ ms$/, 'how long it lived')
  t.match(
    closed[4],
    /^(the spread closed|a quote went stale|a quote became invalid|a venue went down|a book went out of sequence \(resyncing\))$/,
    'why it closed'
  )
  t.equal(
    await page.$$eval('#opportunities tbody tr', (trs) => trs.filter((tr) => tr.children[1].textContent === 'closed').length),
    0,
    'no closed row among the open ones'
  )

  mkdirSync(`${root}test-artifacts`, { recursive: true })
  await page.screenshot({ path: `${root}test-artifacts/dashboard.png`, fullPage: true })
  t.same(errors, [], 'no errors in the page')
})

t.test('the page shows the connection dropping and coming back', { skip: skip ?? false, timeout: 60_000 }, async (t) => {
  const { http, app } = await startServer(t)
  const browser = await launch(t)
  const page = await browser.newPage()
  await page.goto(`${http}/dashboard`)
  await page.waitForFunction(() => document.getElementById('status')?.textContent === 'live', undefined, { timeout: 15_000 })
  // This server runs no feed: the page says so, and how to start one.
  await page.waitForSelector('#idle', { state: 'visible', timeout: 15_000 })
  t.match(await page.textContent('#idle'), /Nothing is being published.*DEMO_FEED=true npm start.*dist\/market\/publisher\.js/s)
  await page.evaluate(() => {
    const status = document.getElementById('status')!
    const seen: string[] = ((window as any).statuses = [])
    new MutationObserver(() => seen.push(status.textContent ?? '')).observe(status, { childList: true, characterData: true, subtree: true })
  })
  for (const connection of hubOf(app.live).connections) connection.socket.terminate()
  await page.waitForFunction(
    () => {
      const seen: string[] = (window as any).statuses
      return seen.includes('reconnecting…') && seen[seen.length - 1] === 'live'
    },
    undefined,
    { timeout: 15_000 }
  )
  t.equal(app.live.connections, 1, 'the page reconnected')
})

t.test(
  'published data that fails the shape check is dropped, also after a reload; the page is served with a Content-Security-Policy',
  { skip: skip ?? false, timeout: 60_000 },
  async (t) => {
    const { http, app } = await startServer(t)
    const leg = (exchange: string, price: number) => ({ exchange, symbol: 'BTC-USDT', price, size: 1, ts: Date.now() })
    const good = {
      id: 'good',
      symbol: 'BTC-USDT',
      status: 'open',
      buy: leg('kraken', 100),
      sell: leg('okx', 101),
      size: 1,
      netBps: 12.5,
      detectedAt: Date.now()
    }
    // Last values: every reload gets them again as snapshots.
    await app.live.publish('opportunities.BAD-LEGS', { id: 'no-legs', symbol: 'BAD-LEGS', status: 'open', netBps: 99 })
    await app.live.publish('opportunities.BAD-NULL', null)
    await app.live.publish('ticker.evil.X', { bid: 1 }) // no exchange: sorted with localeCompare, it threw every second
    await t.rejects(app.live.publish('venue.evil', [1, 2]), { code: 'bad_request', message: '"venue.evil": data must be an object' }, 'refused where it enters')
    const response = await fetch(`${http}/dashboard/`)
    const policy = response.headers.get('content-security-policy') ?? ''
    t.match(policy, /default-src 'none'/)
    t.match(policy, /script-src 'self' 'sha256-[A-Za-z0-9+/]+=*'/, 'its own scripts and the import map by hash')
    t.match(policy, /frame-ancestors 'none'/)

    const browser = await launch(t)
    const page = await browser.newPage()
    const errors: string[] = []
    page.on('pageerror', (err) => errors.push(err.message))
    page.on('console', (msg) => {
      if (msg.type() === 'error') errors.push(msg.text())
    })
    for (const load of ['first load', 'reload']) {
      if (load === 'first load') await page.goto(`${http}/dashboard/`)
      else await page.reload()
      await page.waitForFunction(() => document.getElementById('status')?.textContent === 'live', undefined, { timeout: 15_000 })
      if (load === 'first load') await app.live.publish('opportunities.BTC-USDT', good)
      await page.waitForSelector('#opportunities tbody tr.open', { timeout: 15_000 })
      const rows = await page.$$eval('#opportunities tbody tr', (trs) => trs.map((tr) => tr.children[0]?.textContent))
      t.same(rows, ['BTC-USDT'], `${load}: the well-formed opportunity renders, the malformed ones do not`)
      t.match(await page.textContent('#malformed'), /^\d+ malformed events ignored$/, `${load}: the page says it ignored some`)
      await page.waitForFunction(() => document.getElementById('tick-rate')?.textContent !== '–', undefined, { timeout: 5_000 })
    }
    t.same(errors, [], 'no errors in the page, no Content-Security-Policy violation')
  }
)

t.test('a negative net spread is shown as a loss and drawn below zero, not on it', { skip: skip ?? false, timeout: 60_000 }, async (t) => {
  const { http, app } = await startServer(t)
  const leg = (exchange: string, price: number) => ({ exchange, symbol: 'BTC-USD', price, size: 1, ts: Date.now() })
  const browser = await launch(t)
  const page = await browser.newPage()
  await page.goto(`${http}/dashboard/`)
  await page.waitForFunction(() => document.getElementById('status')?.textContent === 'live', undefined, { timeout: 15_000 })
  // The venues demo's pairing of two real books: buying on one and selling on the other loses 18 bps.
  const pairing = {
    id: 'loss',
    symbol: 'BTC-USD',
    status: 'open',
    buy: leg('coinbase', 78856.06),
    sell: leg('kraken', 78871.5),
    size: 1,
    netBps: -18.04,
    detectedAt: Date.now()
  }
  await app.live.publish('opportunities.BTC-USD', pairing)
  await page.waitForSelector('#opportunities tbody tr.open', { timeout: 15_000 })
  t.same(await page.$eval('#opportunities tbody tr.open td:nth-child(6)', (td) => [td.textContent, td.className]), ['-18.04', 'net loss'])
  await page.waitForFunction(() => (document.getElementById('spread-legend')?.children.length ?? 0) > 0, undefined, { timeout: 15_000 })
  // The axis runs from -20 to 0 bps: the line sits a tenth of the way up, clear of the bottom rows
  // where a net clamped to 0 was drawn.
  const above = await page.$eval('#spread-chart', (canvas) => {
    const c = canvas as HTMLCanvasElement
    const pixels = c.getContext('2d')!.getImageData(50, 0, c.width - 50, c.height - 22 - 6).data
    let n = 0
    // The series' colour, not the near-grey grid lines (#eef0f3) nor the grey labels.
    for (let i = 0; i < pixels.length; i += 4)
      if (pixels[i + 3] > 0 && Math.max(pixels[i], pixels[i + 1], pixels[i + 2]) - Math.min(pixels[i], pixels[i + 1], pixels[i + 2]) > 60) n++
    return n
  })
  t.ok(above >= 4, `${above} colored pixels of the line above the chart's bottom rows`)
})
