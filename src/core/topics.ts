// Topic names, wildcard patterns and the subscription index: a token trie with a per-topic cache of matches.
import { ErrorCode, LiveError } from './protocol.ts'

export interface TopicLimits {
  maxTopicLength: number
  maxTopicTokens: number
}

const BAD_CHARS = /[\s\u0000-\u001f]/

/** Throws bad_request unless `topic` is a valid concrete topic (wildcards: a valid pattern). */
export function checkTopic(topic: string, limits: TopicLimits, wildcards: boolean): void {
  if (topic.length === 0) throw new LiveError(ErrorCode.badRequest, 'empty topic')
  if (topic.length > limits.maxTopicLength) {
    throw new LiveError(ErrorCode.badRequest, `topic longer than ${limits.maxTopicLength} characters`)
  }
  if (BAD_CHARS.test(topic)) throw new LiveError(ErrorCode.badRequest, 'topic contains white space or control characters')
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
export { isPattern, matches } from '../client/patterns.ts'

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
