// Topic patterns: `*` is exactly one token, `>` one or more trailing tokens. Shared by the server
// and the client SDK, so it imports nothing.

export const isPattern = (topic: string): boolean => topic === '*' || topic === '>' || /(^|\.)[*>](\.|$)/.test(topic)

/** Does a concrete topic match a pattern? The reference semantics the index must agree with. */
export function matches(pattern: string, topic: string): boolean {
  const p = pattern.split('.')
  const t = topic.split('.')
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return t.length > i
    if (i >= t.length || (p[i] !== '*' && p[i] !== t[i])) return false
  }
  return p.length === t.length
}
