// The venues this server connects to: one room each (this folder), one line each here. Adding a
// venue is a new room and a line in VENUES (docs/ARCHITECTURE.md, "Adding a venue").
import type { ConnectionOptions, VenueConnection } from '../connection.js'
import type { VenueSpec } from '../spec.js'
import { binance, binancecoinm, binanceusdm } from './binance.js'
import { coinbase } from './coinbase.js'
import { kraken } from './kraken.js'
import { okx } from './okx.js'

export const VENUES = { binance, binanceusdm, binancecoinm, coinbase, kraken, okx } satisfies Record<string, VenueSpec>

export type Exchange = keyof typeof VENUES
export const EXCHANGES = Object.keys(VENUES) as Exchange[]

/** One socket's connection to a venue for these instruments. */
export function createConnection(exchange: Exchange, options: ConnectionOptions): VenueConnection {
  return VENUES[exchange].connection(options)
}
