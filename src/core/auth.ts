// Who may do what: credentials (JWT or static API keys) turned into subscribe/publish grants.
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createVerifier } from 'fast-jwt'
import { ErrorCode, LiveError } from './protocol.js'
import { matches } from './topics.js'

export type AuthMode = 'loopback' | 'required' | 'none'

/** What one connection or request may do: topic patterns per action, and when the credential expires. */
export interface Grants {
  readonly subscribe: readonly string[]
  readonly publish: readonly string[]
  /** Milliseconds since the epoch; null for credentials that do not expire (API keys, anonymous). */
  readonly expiresAt: number | null
  /** Who the credential names (a JWT's `sub`, an API key's position), for logs; never the secret. */
  readonly subject: string
}

export interface AuthOptions {
  auth: AuthMode
  jwtSecret: string
  jwtPublicKey: string
  jwtIssuer: string
  jwtAudience: string
  jwtRequireExp: boolean
  jwtMaxLifetime: number
  apiKeys: string
  /** Comma-separated Origins; a browser page from one of them is trusted like its loopback host. */
  allowedOrigins: string
}

/** Who is asking, as far as the request shows it. */
export interface Peer {
  remoteAddress: string | undefined
  /** The Origin header: set by every browser, whatever page made the request. */
  origin: string | undefined
  /** A proxy's forwarding header is present: the loopback address is the proxy's, not the client's. */
  forwarded: boolean
}

const EVERYTHING = ['>']
const NOTHING: string[] = []
export const ANONYMOUS_SUBSCRIBER: Grants = Object.freeze({ subscribe: EVERYTHING, publish: NOTHING, expiresAt: null, subject: 'anonymous' })
export const UNRESTRICTED: Grants = Object.freeze({ subscribe: EVERYTHING, publish: EVERYTHING, expiresAt: null, subject: 'anonymous' })

export const isLoopback = (address: string | undefined): boolean =>
  address !== undefined && (address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.'))

/**
 * Whether grant pattern `grant` allows everything pattern `pattern` can match (both may hold
 * wildcards): `ticker.>` covers `ticker.binance.*`, `ticker.*.BTC` does not cover `ticker.>`.
 */
export function covers(grant: string, pattern: string): boolean {
  if (grant === '>') return true // the common grant: no split per check
  const g = grant.split('.')
  const p = pattern.split('.')
  for (let i = 0; i < g.length; i++) {
    if (g[i] === '>') return i < p.length
    if (i >= p.length || p[i] === '>') return false
    if (g[i] !== '*' && g[i] !== p[i]) return false
  }
  return g.length === p.length
}

export const maySubscribe = (grants: Grants, pattern: string): boolean => grants.subscribe.some((g) => covers(g, pattern))

export const mayPublish = (grants: Grants, topic: string): boolean => grants.publish.some((g) => g === '>' || g === topic || matches(g, topic))

/** Throws `forbidden` unless the grants allow publishing on `topic`: the check of every publish entry point. */
export function checkPublish(grants: Grants, topic: string): void {
  if (!mayPublish(grants, topic)) throw new LiveError(ErrorCode.forbidden, `no grant to publish on "${topic.slice(0, 256)}"`)
}

/** `subscribe:<pattern>` and `publish:<pattern>` scopes as grants; other scopes are ignored. */
export function grantsOf(scopes: readonly string[], expiresAt: number | null, subject: string): Grants {
  const subscribe: string[] = []
  const publish: string[] = []
  for (const scope of scopes) {
    const colon = scope.indexOf(':')
    const action = scope.slice(0, colon)
    const pattern = scope.slice(colon + 1)
    if (colon <= 0 || pattern === '') continue
    if (action === 'subscribe') subscribe.push(pattern)
    else if (action === 'publish') publish.push(pattern)
  }
  return { subscribe, publish, expiresAt, subject }
}

/** API_KEYS: `key=scope scope;key=scope`; null when malformed (keys are at least 16 characters). */
export function parseApiKeys(text: string): Map<string, string[]> | null {
  const keys = new Map<string, string[]>()
  for (const entry of text
    .split(';')
    .map((e) => e.trim())
    .filter(Boolean)) {
    const eq = entry.indexOf('=')
    const key = entry.slice(0, eq)
    const scopes = entry
      .slice(eq + 1)
      .split(/\s+/)
      .filter(Boolean)
    if (eq < 16 || !/^[\x21-\x7e]+$/.test(key) || scopes.length === 0) return null
    if (!scopes.every((s) => /^(subscribe|publish):[^\s]+$/.test(s))) return null
    keys.set(key, scopes)
  }
  return keys
}

const digest = (text: string): string => createHash('sha256').update(text).digest('base64')

/** Turns a presented credential (or none) into grants, or refuses it with `unauthorized`. */
export class Authenticator {
  readonly mode: AuthMode
  /** API keys by the SHA-256 of the key: a lookup cannot leak a key through timing. */
  private readonly keys = new Map<string, Grants>()
  private readonly verifyJwt: ((token: string) => Record<string, unknown>) | null
  private readonly requireExp: boolean
  private readonly maxLifetime: number
  private readonly trustedOrigins: ReadonlySet<string>

  constructor(options: AuthOptions) {
    this.mode = options.auth
    this.requireExp = options.jwtRequireExp
    this.maxLifetime = options.jwtMaxLifetime
    this.trustedOrigins = new Set(originList(options.allowedOrigins))
    let position = 0
    for (const [key, scopes] of parseApiKeys(options.apiKeys) ?? []) {
      this.keys.set(digest(key), grantsOf(scopes, null, `api-key-${++position}`))
    }
    this.verifyJwt = jwtVerifier(options)
  }

  /** Whether any credential can be presented at all. */
  get configured(): boolean {
    return this.keys.size > 0 || this.verifyJwt !== null
  }

  /** Grants for a request: its credential's, or the anonymous ones this mode allows. */
  authenticate(token: string | undefined, peer: Peer): Grants {
    if (this.mode === 'none') return UNRESTRICTED
    if (token !== undefined && token !== '') return this.verify(token)
    if (this.mode === 'required') throw new LiveError(ErrorCode.unauthorized, 'a credential is required: Authorization: Bearer <token> or ?token=')
    return this.localProcess(peer) ? UNRESTRICTED : ANONYMOUS_SUBSCRIBER
  }

  /**
   * Anonymous publishing is for processes on this host. A loopback address alone does not show
   * one: any web page the host's browser opens connects from loopback too (it sends an Origin),
   * and behind a reverse proxy on this host every remote client does (the proxy forwards).
   */
  private localProcess({ remoteAddress, origin, forwarded }: Peer): boolean {
    return isLoopback(remoteAddress) && !forwarded && (origin === undefined || this.trustedOrigins.has(origin))
  }

  /** A credential's grants; `unauthorized` when it is unknown, invalid or expired (the message never repeats it). */
  verify(token: string): Grants {
    const key = this.keys.get(digest(token))
    if (key !== undefined) return key
    if (this.verifyJwt === null) throw new LiveError(ErrorCode.unauthorized, 'unknown credential')
    let claims: Record<string, unknown>
    try {
      claims = this.verifyJwt(token)
    } catch (err) {
      throw new LiveError(ErrorCode.unauthorized, `invalid token: ${jwtReason(err)}`)
    }
    const scopes =
      typeof claims.scope === 'string' ? claims.scope.split(' ') : Array.isArray(claims.scopes) ? claims.scopes.filter((s) => typeof s === 'string') : []
    const expiresAt = typeof claims.exp === 'number' ? claims.exp * 1000 : null
    // A token that never expires, or only in a year, is a key that cannot be taken back.
    if (expiresAt === null && this.requireExp) throw new LiveError(ErrorCode.unauthorized, 'invalid token: it has no exp')
    if (expiresAt !== null && !(expiresAt - Date.now() <= this.maxLifetime)) {
      throw new LiveError(ErrorCode.unauthorized, `invalid token: exp is more than ${this.maxLifetime} ms away (JWT_MAX_LIFETIME)`)
    }
    return grantsOf(scopes, expiresAt, typeof claims.sub === 'string' ? claims.sub.slice(0, 128) : 'jwt')
  }
}

/** The JWT verifier the options ask for, or null; a key that cannot be used stops start-up naming its variable. */
function jwtVerifier(options: AuthOptions): ((token: string) => Record<string, unknown>) | null {
  const variable = options.jwtSecret ? 'JWT_SECRET' : 'JWT_PUBLIC_KEY'
  try {
    const key = options.jwtSecret || readKey(options.jwtPublicKey)
    if (!key) return null
    return createVerifier({
      key,
      algorithms: options.jwtSecret ? ['HS256'] : ['RS256', 'ES256'],
      allowedIss: options.jwtIssuer || undefined,
      allowedAud: options.jwtAudience || undefined,
      requiredClaims: [...(options.jwtIssuer ? ['iss'] : []), ...(options.jwtAudience ? ['aud'] : [])]
    })
  } catch (err) {
    throw new Error(
      `${variable}: not a usable key (expected ${options.jwtSecret ? 'a secret' : 'an RS256 or ES256 public key in PEM, or the path of one'}): ${(err as Error).message}`
    )
  }
}

/** A PEM given inline, or the path of a file holding one. */
function readKey(value: string): string {
  if (value === '' || value.includes('-----BEGIN')) return value
  return readFileSync(value, 'utf8')
}

/** fast-jwt's error code, said plainly; its messages are safe but its codes are stable. */
function jwtReason(err: unknown): string {
  const code = (err as { code?: string }).code ?? ''
  if (code === 'FAST_JWT_EXPIRED') return 'expired'
  if (code === 'FAST_JWT_INACTIVE') return 'not yet valid'
  if (code.startsWith('FAST_JWT_INVALID_SIGNATURE')) return 'bad signature'
  if (code === 'FAST_JWT_INVALID_CLAIM_VALUE') return 'issuer or audience not accepted'
  if (code === 'FAST_JWT_INVALID_ALGORITHM') return 'algorithm not accepted'
  return 'malformed'
}

/** ALLOWED_ORIGINS as a list. */
export const originList = (text: string): string[] =>
  text
    .split(',')
    .map((o) => o.trim())
    .filter(Boolean)

/** The credential of an HTTP request: `Authorization: Bearer <token>`, else `?token=`. */
export function tokenOf(authorization: string | undefined, queryToken: string | undefined): string | undefined {
  if (authorization !== undefined) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization)
    if (m !== null) return m[1]
  }
  return queryToken
}
