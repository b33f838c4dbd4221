// The per-message helpers of the L2 book and the venues' checksums, against their definitions:
// decimal() gives what Number() gives for the plain decimals venues write and NaN for anything else;
// the streamed CRC32s give zlib's crc32 of the strings Kraken and OKX document.
import t from 'tap'
import { crc32 } from 'node:zlib'
import { decimal, OrderBook } from '../src/market/book.ts'
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
  const book = new OrderBook()
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
    for (const l of book.asks.levels.slice(0, 10)) kraken += strip(l.priceText) + strip(l.sizeText)
    for (const l of book.bids.levels.slice(0, 10)) kraken += strip(l.priceText) + strip(l.sizeText)
    t.equal(krakenChecksum(book), crc32(kraken), `Kraken, ${b.length} bids and ${a.length} asks`)
    const parts: string[] = []
    for (let i = 0; i < 25; i++) {
      if (i < book.bids.levels.length) parts.push(`${book.bids.levels[i].priceText}:${book.bids.levels[i].sizeText}`)
      if (i < book.asks.levels.length) parts.push(`${book.asks.levels[i].priceText}:${book.asks.levels[i].sizeText}`)
    }
    t.equal(okxChecksum(book), crc32(parts.join(':')) | 0, `OKX, ${b.length} bids and ${a.length} asks`)
  }
})

t.test('top(): a level unchanged since the last publish is the same pair, and an unchanged list the same list', async (t) => {
  const book = new OrderBook()
  for (const [p, s] of [
    [100, 1],
    [99, 2],
    [98, 3]
  ])
    book.bids.set(p, s, String(p), String(s))
  const first = book.bids.top(2)
  t.same(first, [
    [100, 1],
    [99, 2]
  ])
  t.equal(book.bids.top(2, first), first, 'nothing published changed: the same list')
  book.bids.set(98, 5, '98', '5')
  t.equal(book.bids.top(2, first), first, 'a level past the depth changed: the same list')

  book.bids.set(99, 4, '99', '4')
  const second = book.bids.top(2, first)
  t.same(second, [
    [100, 1],
    [99, 4]
  ])
  t.not(second, first, 'a changed level: a new list')
  t.equal(second[0], first[0], 'the unchanged best is the same pair')
  t.not(second[1], first[1], 'the changed level is a new pair')
  t.same(
    first,
    [
      [100, 1],
      [99, 2]
    ],
    'the last publish is left as it was'
  )

  book.bids.set(101, 7, '101', '7')
  const third = book.bids.top(2, second)
  t.same(third, [
    [101, 7],
    [100, 1]
  ])
  t.equal(third[1], second[0], 'a level pushed down by a better one is still the same pair')

  book.bids.set(101, 0, '101', '0')
  book.bids.set(100, 0, '100', '0')
  const fourth = book.bids.top(2, third)
  t.same(fourth, [
    [99, 4],
    [98, 5]
  ])
  t.not(fourth[0], second[1], 'only the last publish is looked at: a level it did not have is a new pair')

  // Asks (best is lowest) and sizes through a conversion (an inverse contract's base units).
  book.asks.set(10, 100, '10', '100')
  book.asks.set(20, 100, '20', '100')
  const inBase = (price: number, size: number) => size / price
  const asks = book.asks.top(5, [], inBase)
  t.same(asks, [
    [10, 10],
    [20, 5]
  ])
  t.equal(book.asks.top(5, asks, inBase), asks, 'the same converted sizes: the same list')
  book.asks.set(15, 30, '15', '30')
  const more = book.asks.top(5, asks, inBase)
  t.same(more, [
    [10, 10],
    [15, 2],
    [20, 5]
  ])
  t.ok(more[0] === asks[0] && more[2] === asks[1], 'the pairs around a new level are the same pairs')
})
