// Subscription filters (docs/PROTOCOL.md "Filters"): a small expression over an event's data,
// parsed and checked once at subscribe time, then evaluated once per event per distinct filter.
//   netBps >= 10 and symbol in ["BTC-USDT", "ETH-USDT"] and not buy.exchange == "kraken"
// Shared by the server and the client SDK (which checks a filter before sending it, and applies it
// when another subscription of the same connection brings an event), so it imports nothing.

/** A filter that does not parse; the server answers it with bad_request and this message. */
export class FilterError extends Error {
  readonly code = 'bad_request'
}

/** Longest filter text, comparisons in one filter, values in one `in` list, nesting. */
export const FILTER_LIMITS = { length: 1024, comparisons: 32, values: 100, depth: 16 } as const

type Value = number | string | boolean | null
type Op = '==' | '!=' | '<' | '<=' | '>' | '>='
type Node =
  | { kind: 'and' | 'or'; left: Node; right: Node }
  | { kind: 'not'; operand: Node }
  | { kind: 'cmp'; path: string[]; op: Op; value: Value }
  | { kind: 'in'; path: string[]; values: Value[] }

export interface Filter {
  /** The canonical text: equal filters, however spaced, share a key (and their result per event). */
  readonly key: string
  readonly test: (data: unknown) => boolean
  /** What one evaluation costs at most, in field reads: one per name of each comparison's field (`a.b` reads two). */
  readonly cost: number
}

const TOKEN = /(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|("(?:[^"\\]|\\.)*")|([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)|(==|!=|<=|>=|<|>|\(|\)|\[|\]|,)/y

interface Token {
  type: 'number' | 'string' | 'name' | 'punct' | 'end'
  text: string
  value?: Value
  at: number
}

function tokenize(text: string): Token[] {
  const tokens: Token[] = []
  let at = 0
  for (;;) {
    while (at < text.length && (text[at] === ' ' || text[at] === '\t' || text[at] === '\n' || text[at] === '\r')) at++
    if (at >= text.length) break
    TOKEN.lastIndex = at
    const m = TOKEN.exec(text)
    if (m === null) fail(`unexpected character "${text[at]}"`, at)
    if (m[1] !== undefined) {
      // 1e999 would read as Infinity, which has no JSON form: its canonical text would be `null`.
      const value = Number(m[1])
      if (!Number.isFinite(value)) fail(`number outside the double range`, at)
      tokens.push({ type: 'number', text: m[1], value, at })
    } else if (m[2] !== undefined) {
      let value: string
      try {
        value = JSON.parse(m[2])
      } catch {
        fail('bad string', at)
      }
      tokens.push({ type: 'string', text: m[2], value, at })
    } else if (m[3] !== undefined) tokens.push({ type: 'name', text: m[3], at })
    else tokens.push({ type: 'punct', text: m[4], at })
    at = TOKEN.lastIndex
  }
  tokens.push({ type: 'end', text: 'the end', at: text.length })
  return tokens
}

function fail(message: string, at: number): never {
  throw new FilterError(`filter: ${message} at position ${at}`)
}

const WORDS = new Set(['and', 'or', 'not', 'in', 'true', 'false', 'null'])

class Parser {
  private i = 0
  private comparisons = 0
  constructor(private readonly tokens: Token[]) {}

  parse(): Node {
    const node = this.or(0)
    const t = this.peek()
    if (t.type !== 'end') fail(`unexpected "${t.text}"`, t.at)
    return node
  }

  private peek(): Token {
    return this.tokens[this.i]
  }

  private next(): Token {
    return this.tokens[this.i++]
  }

  private word(w: string): boolean {
    const t = this.peek()
    if (t.type === 'name' && t.text === w) {
      this.i++
      return true
    }
    return false
  }

  private or(depth: number): Node {
    let left = this.and(depth)
    while (this.word('or')) left = { kind: 'or', left, right: this.and(depth) }
    return left
  }

  private and(depth: number): Node {
    let left = this.not(depth)
    while (this.word('and')) left = { kind: 'and', left, right: this.not(depth) }
    return left
  }

  private not(depth: number): Node {
    if (depth > FILTER_LIMITS.depth) fail(`nested deeper than ${FILTER_LIMITS.depth}`, this.peek().at)
    if (this.word('not')) return { kind: 'not', operand: this.not(depth + 1) }
    const t = this.peek()
    if (t.type === 'punct' && t.text === '(') {
      this.i++
      const inner = this.or(depth + 1)
      const close = this.next()
      if (close.type !== 'punct' || close.text !== ')') fail(`expected ")", found "${close.text}"`, close.at)
      return inner
    }
    return this.comparison()
  }

  private comparison(): Node {
    const field = this.next()
    if (field.type !== 'name' || WORDS.has(field.text)) fail(`expected a field name, found "${field.text}"`, field.at)
    if (++this.comparisons > FILTER_LIMITS.comparisons) fail(`more than ${FILTER_LIMITS.comparisons} comparisons`, field.at)
    const path = field.text.split('.')
    if (this.word('in')) {
      const open = this.next()
      if (open.type !== 'punct' || open.text !== '[') fail(`expected "[", found "${open.text}"`, open.at)
      const values: Value[] = [this.value()]
      for (;;) {
        const t = this.next()
        if (t.type === 'punct' && t.text === ']') break
        if (t.type !== 'punct' || t.text !== ',') fail(`expected "," or "]", found "${t.text}"`, t.at)
        if (values.length >= FILTER_LIMITS.values) fail(`more than ${FILTER_LIMITS.values} values in a list`, t.at)
        values.push(this.value())
      }
      return { kind: 'in', path, values }
    }
    const op = this.next()
    if (op.type !== 'punct' || !['==', '!=', '<', '<=', '>', '>='].includes(op.text)) fail(`expected a comparison or "in", found "${op.text}"`, op.at)
    return { kind: 'cmp', path, op: op.text as Op, value: this.value() }
  }

  private value(): Value {
    const t = this.next()
    if (t.type === 'number' || t.type === 'string') return t.value as Value
    if (t.type === 'name' && (t.text === 'true' || t.text === 'false')) return t.text === 'true'
    if (t.type === 'name' && t.text === 'null') return null
    fail(`expected a number, a "string", true, false or null, found "${t.text}"`, t.at)
  }
}

/** Reads the field at `path` of the data, own properties only; undefined when absent. */
type Read = (data: unknown) => unknown

function reader(path: string[]): Read {
  if (path.length === 1) {
    const key = path[0]
    return (d) => (d !== null && typeof d === 'object' && Object.hasOwn(d, key) ? (d as Record<string, unknown>)[key] : undefined)
  }
  return (d) => {
    let v = d
    for (let i = 0; i < path.length; i++) {
      if (v === null || typeof v !== 'object' || !Object.hasOwn(v, path[i])) return undefined
      v = (v as Record<string, unknown>)[path[i]]
    }
    return v
  }
}

function compile(node: Node): (data: unknown) => boolean {
  switch (node.kind) {
    case 'and': {
      const l = compile(node.left)
      const r = compile(node.right)
      return (d) => l(d) && r(d)
    }
    case 'or': {
      const l = compile(node.left)
      const r = compile(node.right)
      return (d) => l(d) || r(d)
    }
    case 'not': {
      const o = compile(node.operand)
      return (d) => !o(d)
    }
    case 'in': {
      const read = reader(node.path)
      const values = new Set(node.values)
      return (d) => values.has(read(d) as Value)
    }
    case 'cmp': {
      const read = reader(node.path)
      const { op, value } = node
      if (op === '==') return (d) => read(d) === value
      if (op === '!=') return (d) => read(d) !== value
      // Orderings hold between two numbers or two strings; anything else is false.
      if (typeof value !== 'number' && typeof value !== 'string') return () => false
      const type = typeof value
      const bound = value as number
      if (op === '<')
        return (d) => {
          const x = read(d)
          return typeof x === type && (x as number) < bound
        }
      if (op === '<=')
        return (d) => {
          const x = read(d)
          return typeof x === type && (x as number) <= bound
        }
      if (op === '>')
        return (d) => {
          const x = read(d)
          return typeof x === type && (x as number) > bound
        }
      return (d) => {
        const x = read(d)
        return typeof x === type && (x as number) >= bound
      }
    }
  }
}

function cost(node: Node): number {
  switch (node.kind) {
    case 'and':
    case 'or':
      return cost(node.left) + cost(node.right)
    case 'not':
      return cost(node.operand)
    case 'in':
    case 'cmp':
      return node.path.length
  }
}

function canonical(node: Node): string {
  switch (node.kind) {
    case 'and':
    case 'or':
      return `(${canonical(node.left)} ${node.kind} ${canonical(node.right)})`
    case 'not':
      return `not ${canonical(node.operand)}`
    case 'in': {
      // A list is a set: the same values in any order, repeated or not, are one filter.
      const values = [...new Set(node.values.map((v) => JSON.stringify(v)))].sort()
      return `${node.path.join('.')} in [${values.join(',')}]`
    }
    case 'cmp':
      return `${node.path.join('.')} ${node.op} ${JSON.stringify(node.value)}`
  }
}

/** Parses a subscribe's `filter`; throws bad_request naming the position of the first error. */
export function parseFilter(text: unknown): Filter {
  if (typeof text !== 'string') throw new FilterError('filter: a string expression')
  if (text.length > FILTER_LIMITS.length) throw new FilterError(`filter: longer than ${FILTER_LIMITS.length} characters`)
  if (text.trim() === '') throw new FilterError('filter: empty')
  const node = new Parser(tokenize(text)).parse()
  return { key: canonical(node), test: compile(node), cost: cost(node) }
}
