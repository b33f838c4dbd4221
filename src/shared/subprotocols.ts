// The WebSocket subprotocol of each codec (docs/PROTOCOL.md, "Connecting"): shared by the server,
// which picks one, and the SDK, which offers one. Imports nothing, so browsers load it as is.

export type Codec = 'msgpack' | 'json'

export const SUBPROTOCOL_OF: Readonly<Record<Codec, string>> = Object.freeze({ msgpack: 'live.v1.msgpack', json: 'live.v1.json' })
