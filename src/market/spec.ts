// What a venue's room declares: everything the shared machinery needs to know of one venue.
import type { ConnectionOptions, Endpoints, VenueConnection } from './connection.js'
import type { Parsed } from './instruments.js'

export interface VenueSpec {
  /** The exchange token of its topics: book.<exchange>.<symbol>. */
  readonly exchange: string
  /** Where the venue is (FEEDS_ENDPOINTS points elsewhere). */
  readonly endpoints: Endpoints
  /** Its instrument metadata: REST paths under `endpoints.rest`, each answer parsed alone. */
  readonly metadata: { readonly paths: readonly string[]; parse(answer: unknown): Parsed }
  /** Instruments one socket carries, and the age at which the venue closes a socket (null: never). */
  readonly limits: { readonly instruments: number; readonly lifetimeMs: number | null }
  /** One socket's connection for these instruments. */
  connection(options: ConnectionOptions): VenueConnection
}
