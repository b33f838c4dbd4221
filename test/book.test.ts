// The per-message helpers of the L2 book and the venues' checksums, against their definitions:
// decimal() gives what Number() gives for the plain decimals venues write and NaN for anything else;
// the streamed CRC32s give zlib's crc32 of the strings Kraken and OKX document.
import t from 'tap'
import { crc32 } from 'node:zlib'
import { decimal, MAX_LEVELS, OrderBook } from '../src/market/book.ts'
import { krakenChecksum } from '../src/market/venues/kraken.ts'
import { okxChecksum } from '../src/market/venues/okx.ts'

t.test('decimal: plain non-negative decimals as Number() reads them, anything else NaN', async (t) => {
  const same: [string, number][] = [
    ['0', 0],
    ['0.0', 0],
    ['12.5', 12.5],
    ['0.00001000', 0.00001],
    ['43123.45', 43123.45],
    ['00012.000', 12],
    ['0.30000000000000004', 0.30000000000000004],
    ['9007199254740991', 9007199254740991],
    // Past 2^53 and past 22 fraction digits the digits are not exact: Number() reads them.
    ['9007199254740993', 9007199254740992],
    ['0.12345678901234567890123', 0.12345678901234568],
    ['1234567890123456789012345678901234567890', 1.2345678901234568e39],
    ['1e5', 100000],
    ['1E5', 100000],
    ['1.5e-7', 1.5e-7],
    ['1.5E-07', 1.5e-7],
    ['0e999', 0]
  ]
  for (const [text, value] of same) t.equal(decimal(text), value, text)
  const nan = [
    '',
    '.5',
    '5.',
    '1.e5',
    '1e',
    '1e-',
    '1e+5',
    '-1',
    '+1',
    ' 1',
    '1 ',
    '0x10',
    'Infinity',
    'NaN',
    '1.2.3',
    '1ee5',
    'e5',
    '١',
    '1e400',
    '1'.repeat(41)
  ]
  for (const text of nan) t.ok(Number.isNaN(decimal(text)), JSON.stringify(text))
  for (const value of [null, undefined, 5, {}, ['1']]) t.ok(Number.isNaN(decimal(value)), String(value))
})

t.test('decimal agrees with the grammar and Number() on generated text', async (t) => {
  const reference = (text: string) => (text.length <= 40 && /^\d+(\.\d+)?(e-?\d+)?$/i.test(text) && Number.isFinite(Number(text)) ? Number(text) : NaN)
  let seed = 7
  const next = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31
    return seed % n
  }
  const alphabet = '0123456789.eE-+ x'
  let differ = 0
  for (let k = 0; k < 20_000; k++) {
    let text = ''
    const length = next(44)
    for (let j = 0; j < length; j++) text += alphabet[k % 2 === 0 ? next(11) : next(alphabet.length)]
    if (!Object.is(decimal(text), reference(text))) differ++
  }
  t.equal(differ, 0)
})

const level = (price: string, size: string): [number, string, string] => [Number(price), price, size]
const bookOf = (bids: [number, string, string][], asks: [number, string, string][]) => {
  const book = new OrderBook(true)
  for (const [p, pt, st] of bids) book.bids.set(p, Number(st), pt, st)
  for (const [p, pt, st] of asks) book.asks.set(p, Number(st), pt, st)
  return book
}

t.test('checksums: the strings Kraken and OKX document, through zlib', async (t) => {
  const strip = (text: string) => text.replace('.', '').replace(/^0+/, '')
  const bids = Array.from({ length: 30 }, (_, i) => level((0.5 - i * 0.0125).toFixed(4), (i * 0.25).toFixed(8)))
  const asks = Array.from({ length: 30 }, (_, i) => level((0.5125 + i * 0.0125).toFixed(4), (100 + i).toFixed(2)))
  for (const [b, a] of [
    [bids, asks],
    [bids.slice(0, 3), asks],
    [[], asks.slice(0, 1)],
    [[], []]
  ]) {
    const book = bookOf(b, a)
    let kraken = ''
    for (const side of [book.asks, book.bids]) for (let i = 0; i < Math.min(10, side.length); i++) kraken += strip(side.priceText(i)) + strip(side.sizeText(i))
    t.equal(krakenChecksum(book), crc32(kraken), `Kraken, ${b.length} bids and ${a.length} asks`)
    const parts: string[] = []
    for (let i = 0; i < 25; i++) {
      if (i < book.bids.length) parts.push(`${book.bids.priceText(i)}:${book.bids.sizeText(i)}`)
      if (i < book.asks.length) parts.push(`${book.asks.priceText(i)}:${book.asks.sizeText(i)}`)
    }
    t.equal(okxChecksum(book), crc32(parts.join(':')) | 0, `OKX, ${b.length} bids and ${a.length} asks`)
  }
})

t.test('top(): the best levels best first, sizes through the conversion given (an inverse contract in base units)', async (t) => {
  const book = new OrderBook()
  for (const [p, s] of [
    [99, 2],
    [100, 1],
    [98, 3]
  ])
    book.bids.set(p, s, String(p), String(s))
  t.same(book.bids.top(2), [
    [100, 1],
    [99, 2]
  ])
  t.same(
    book.bids.top(10),
    [
      [100, 1],
      [99, 2],
      [98, 3]
    ],
    'no more than it holds'
  )
  book.asks.set(20, 100, '20', '100')
  book.asks.set(10, 100, '10', '100')
  t.same(
    book.asks.top(5, (price, size) => size / price),
    [
      [10, 10],
      [20, 5]
    ]
  )
})

/** The book side as a plain best-first list, as it was kept before the typed array: the reference. */
class ReferenceSide {
  levels: { price: number; size: number; priceText: string; sizeText: string }[] = []
  knownTo: number | null = null
  constructor(private readonly descending: boolean) {}
  private better = (a: number, b: number) => (this.descending ? a > b : a < b)
  unknownPast(price: number) {
    if (this.knownTo === null || this.better(price, this.knownTo)) this.knownTo = price
  }
  set(price: number, size: number, priceText: string, sizeText: string) {
    const at = this.levels.findIndex((l) => l.price === price)
    if (at >= 0) {
      if (size === 0) this.levels.splice(at, 1)
      else Object.assign(this.levels[at], { size, sizeText })
      return
    }
    if (size === 0) return
    let k = 0
    while (k < this.levels.length && this.better(this.levels[k].price, price)) k++
    if (k >= MAX_LEVELS) return this.unknownPast(this.levels[MAX_LEVELS - 1].price)
    this.levels.splice(k, 0, { price, size, priceText, sizeText })
    if (this.levels.length > MAX_LEVELS) {
      this.levels.pop()
      this.unknownPast(this.levels[MAX_LEVELS - 1].price)
    }
  }
  covers(depth: number) {
    if (this.knownTo === null) return true
    const known = this.knownTo
    return this.levels.filter((l) => !this.better(known, l.price)).length >= depth
  }
}

t.test('a book side (numbers only, or with texts) agrees with a plain sorted list through random sets, clears, cuts and a full side', async (t) => {
  let seed = 7
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
  for (const [descending, texts] of [
    [true, true],
    [false, true],
    [true, false],
    [false, false]
  ]) {
    const book = new OrderBook(texts)
    const side = descending ? book.bids : book.asks
    let reference = new ReferenceSide(descending)
    let differ = ''
    // First 5,100 levels in a shuffled order: the side fills up and drops what comes past its worst.
    const first = Array.from({ length: 5_100 }, (_, i) => 1 + i * 1.5)
    for (let i = first.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1))
      ;[first[i], first[j]] = [first[j], first[i]]
    }
    for (const price of first) {
      side.set(price, 1, String(price), '1')
      reference.set(price, 1, String(price), '1')
    }
    t.ok(reference.knownTo !== null && side.length === MAX_LEVELS, 'the side filled up and dropped levels on the way')
    for (let op = 0; op < 40_000 && differ === ''; op++) {
      const r = random()
      if (r < 0.0005) {
        side.clear()
        reference = new ReferenceSide(descending)
      } else if (r < 0.001) {
        const depth = Math.floor(random() * 40)
        side.truncate(depth)
        reference.levels.length = Math.min(depth, reference.levels.length)
      } else {
        // Mostly near the top of a wide range, as a venue's updates are; past 5,000 levels a full side drops its worst.
        const price = 1 + Math.floor(random() ** 3 * 9_000) / 2
        const size = random() < 0.3 ? 0 : 1 + Math.floor(random() * 9)
        side.set(price, size, `${price}.0`, `${size}.00`)
        reference.set(price, size, `${price}.0`, `${size}.00`)
      }
      const levels = reference.levels
      if (side.length !== levels.length) differ = `op ${op}: ${side.length} levels, the reference ${levels.length}`
      for (let i = 0; i < levels.length && differ === ''; i++) {
        const l = levels[i]
        const priceText = texts ? l.priceText : ''
        const sizeText = texts ? l.sizeText : ''
        if (side.price(i) !== l.price || side.size(i) !== l.size || side.priceText(i) !== priceText || side.sizeText(i) !== sizeText)
          differ = `op ${op}: level ${i} is ${side.price(i)} ${side.size(i)}, the reference ${l.price} ${l.size}`
      }
      const depth = Math.floor(random() * 5_001)
      if (differ === '' && side.covers(depth) !== reference.covers(depth)) differ = `op ${op}: covers(${depth}) ${side.covers(depth)}`
      const top = JSON.stringify(side.top(20))
      if (differ === '' && top !== JSON.stringify(levels.slice(0, 20).map((l) => [l.price, l.size]))) differ = `op ${op}: top(20) is ${top}`
    }
    t.equal(differ, '', `${descending ? 'bids' : 'asks'}${texts ? ' with texts' : ''}: the same levels, texts and coverage after every operation`)
  }
})
