// Topic names, wildcard patterns and the subscription index: a token trie with a per-topic cache of matches.
import { ErrorCode, LiveError } from './protocol.js'

export interface TopicLimits {
  maxTopicLength: number
  maxTopicTokens: number
}

// Beyond printable ASCII: white space, controls, format characters (U+200B, U+202E: look-alike
// and reordered topics), unassigned code points and lone surrogates are refused.
const BAD_UNICODE = /[\s\p{Cc}\p{Cf}\p{Cn}\p{Cs}]/u

/** Printable ASCII but space (the common case, checked without a regular expression), else BAD_UNICODE. */
function badChars(topic: string): boolean {
  for (let i = 0; i < topic.length; i++) {
    const c = topic.charCodeAt(i)
    if (c <= 0x20 || c === 0x7f) return true
    if (c > 0x7e) return BAD_UNICODE.test(topic)
  }
  return false
}

/** Throws bad_request unless `topic` is a valid concrete topic (wildcards: a valid pattern). */
export function checkTopic(topic: string, limits: TopicLimits, wildcards: boolean): void {
  if (topic.length === 0) throw new LiveError(ErrorCode.badRequest, 'empty topic')
  if (topic.length > limits.maxTopicLength) {
    throw new LiveError(ErrorCode.badRequest, `topic longer than ${limits.maxTopicLength} characters`)
  }
  if (badChars(topic)) throw new LiveError(ErrorCode.badRequest, 'topic contains white space, control, format or unassigned characters')
  const tokens = topic.split('.')
  if (tokens.length > limits.maxTopicTokens) {
    throw new LiveError(ErrorCode.badRequest, `topic has more than ${limits.maxTopicTokens} tokens`)
  }
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]
    if (token === '') throw new LiveError(ErrorCode.badRequest, `topic "${topic}" has an empty token`)
    if (token === '*' || token === '>') {
      if (!wildcards) throw new LiveError(ErrorCode.badRequest, `"${topic}": publish needs a concrete topic, not a wildcard`)
      if (token === '>' && i !== tokens.length - 1) throw new LiveError(ErrorCode.badRequest, `"${topic}": ">" must be the last token`)
    } else if (token.includes('*') || token.includes('>')) {
      throw new LiveError(ErrorCode.badRequest, `"${topic}": wildcards must be whole tokens`)
    }
  }
}

// Pattern semantics live with the client SDK, which runs in browsers too.
export { isPattern, matches } from '../shared/patterns.js'

class TrieNode<S> {
  readonly children = new Map<string, TrieNode<S>>()
  star: TrieNode<S> | null = null
  /** Subscribers whose pattern ends here. */
  readonly here = new Set<S>()
  /** Subscribers whose pattern ends with `>` after this node. */
  readonly rest = new Set<S>()

  get empty(): boolean {
    return this.children.size === 0 && this.star === null && this.here.size === 0 && this.rest.size === 0
  }
}

/**
 * What matching one frame may cost, in index nodes visited. A subscribe resolves its `since`
 * entries through a trie of its patterns and its snapshots through the topic index, so honest
 * frames cost about their size; crafted ones (thousands of wildcard patterns against thousands of
 * entries) stop here with `too_large` instead of holding the event loop. 100,000 visits take
 * ~8 ms on the benchmark machine; a `>` snapshot of 10,000 three-token topics takes ~11,000.
 */
export const FRAME_WORK = 100_000

export class Work {
  constructor(private left: number) {}

  /** No budget: for callers in process (the engine, tests), whose patterns are not a client's. */
  static unlimited(): Work {
    return new Work(Number.MAX_SAFE_INTEGER)
  }

  /** Spends `n` (a filter evaluation costs its field reads, src/core/filter-table.ts). */
  spend(n = 1): void {
    this.left -= n
    if (this.left < 0) {
      throw new LiveError(ErrorCode.tooLarge, "matching this frame's patterns, since entries and snapshots costs more than one frame may: send fewer per frame")
    }
  }
}

class TopicNode {
  readonly children = new Map<string, TopicNode>()
  /** The topic that ends here, if one does. */
  topic: string | null = null
}

/** Concrete topics as a token trie: a pattern finds its topics by walking only the branches it selects. */
export class TopicTree {
  private readonly root = new TopicNode()

  add(topic: string): void {
    let node = this.root
    for (const token of topic.split('.')) {
      let next = node.children.get(token)
      if (next === undefined) {
        next = new TopicNode()
        node.children.set(token, next)
      }
      node = next
    }
    node.topic = topic
  }

  remove(topic: string): void {
    const tokens = topic.split('.')
    const path: TopicNode[] = [this.root]
    for (const token of tokens) {
      const next = path[path.length - 1].children.get(token)
      if (next === undefined) return
      path.push(next)
    }
    path[path.length - 1].topic = null
    for (let i = path.length - 1; i > 0 && path[i].topic === null && path[i].children.size === 0; i--) {
      path[i - 1].children.delete(tokens[i - 1])
    }
  }

  /** The topics a pattern matches; every node visited is spent from `work`. */
  matching(pattern: string, work: Work): string[] {
    const found: string[] = []
    this.collect(this.root, pattern.split('.'), 0, work, found)
    return found
  }

  private collect(node: TopicNode, tokens: string[], i: number, work: Work, found: string[]): void {
    work.spend()
    if (i === tokens.length) {
      if (node.topic !== null) found.push(node.topic)
      return
    }
    const token = tokens[i]
    if (token === '>') for (const child of node.children.values()) this.all(child, work, found)
    else if (token === '*') for (const child of node.children.values()) this.collect(child, tokens, i + 1, work, found)
    else {
      const child = node.children.get(token)
      if (child !== undefined) this.collect(child, tokens, i + 1, work, found)
    }
  }

  private all(node: TopicNode, work: Work, found: string[]): void {
    work.spend()
    if (node.topic !== null) found.push(node.topic)
    for (const child of node.children.values()) this.all(child, work, found)
  }
}

const MAX_CACHED_TOPICS = 100_000
const NONE: readonly never[] = Object.freeze([])

/**
 * Which subscribers want a concrete topic. A lookup walks only the trie branches the topic's
 * tokens select; the result is cached per topic until the next (un)subscribe, so a publish to a
 * known topic costs one Map lookup. Each subscriber appears once per topic, however many of its
 * patterns match.
 */
export class SubscriptionIndex<S> {
  private readonly root = new TrieNode<S>()
  private readonly cache = new Map<string, readonly S[]>()

  add(pattern: string, subscriber: S): void {
    let node = this.root
    const tokens = pattern.split('.')
    for (let i = 0; i < tokens.length; i++) {
      const token = tokens[i]
      if (token === '>') {
        node.rest.add(subscriber)
        this.cache.clear()
        return
      }
      let next = token === '*' ? node.star : node.children.get(token)
      if (next === undefined || next === null) {
        next = new TrieNode<S>()
        if (token === '*') node.star = next
        else node.children.set(token, next)
      }
      node = next
    }
    node.here.add(subscriber)
    this.cache.clear()
  }

  remove(pattern: string, subscriber: S): void {
    const tokens = pattern.split('.')
    const path: TrieNode<S>[] = [this.root]
    let node: TrieNode<S> | null | undefined = this.root
    for (let i = 0; i < tokens.length && tokens[i] !== '>'; i++) {
      node = tokens[i] === '*' ? node.star : node.children.get(tokens[i])
      if (!node) return
      path.push(node)
    }
    if (tokens[tokens.length - 1] === '>') node.rest.delete(subscriber)
    else node.here.delete(subscriber)
    this.cache.clear()
    // Prune empty branches so the trie does not keep every pattern ever seen.
    for (let i = path.length - 1; i > 0; i--) {
      if (!path[i].empty) break
      const parent = path[i - 1]
      const token = tokens[i - 1]
      if (token === '*') parent.star = null
      else parent.children.delete(token)
    }
  }

  /** Whether any pattern matches a concrete topic: stops at the first; every node visited is spent from `work`. */
  has(topic: string, work: Work): boolean {
    return this.find(this.root, topic.split('.'), 0, work)
  }

  private find(node: TrieNode<S>, tokens: string[], i: number, work: Work): boolean {
    work.spend()
    if (i === tokens.length) return node.here.size > 0
    if (node.rest.size > 0) return true
    const exact = node.children.get(tokens[i])
    if (exact !== undefined && this.find(exact, tokens, i + 1, work)) return true
    return node.star !== null && this.find(node.star, tokens, i + 1, work)
  }

  /** Subscribers of a concrete topic, each once. The array is shared: do not modify it. */
  match(topic: string): readonly S[] {
    const cached = this.cache.get(topic)
    if (cached !== undefined) return cached
    const found = new Set<S>()
    this.collect(this.root, topic.split('.'), 0, found)
    const result = found.size === 0 ? NONE : [...found]
    if (this.cache.size >= MAX_CACHED_TOPICS) this.cache.clear()
    this.cache.set(topic, result)
    return result
  }

  private collect(node: TrieNode<S>, tokens: string[], i: number, found: Set<S>): void {
    if (i === tokens.length) {
      for (const s of node.here) found.add(s)
      return
    }
    for (const s of node.rest) found.add(s)
    const exact = node.children.get(tokens[i])
    if (exact !== undefined) this.collect(exact, tokens, i + 1, found)
    if (node.star !== null) this.collect(node.star, tokens, i + 1, found)
  }
}
