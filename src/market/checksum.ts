// CRC32 (the zlib polynomial) fed text piece by piece, for the venues that checksum their books'
// top levels (Kraken, OKX): no string is built per message to checksum it. Text is taken as bytes
// one per character, so it must be ASCII (the venue decimals and the separators they join with).

const TABLE = new Int32Array(256)
for (let n = 0; n < 256; n++) {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  TABLE[n] = c
}

/** The running value before the first byte. */
export const CRC_START = -1

/** `crc` carried over the characters of `text`. */
export function crcText(crc: number, text: string): number {
  for (let k = 0; k < text.length; k++) crc = TABLE[(crc ^ text.charCodeAt(k)) & 0xff] ^ (crc >>> 8)
  return crc
}

/** `crc` carried over one character code. */
export function crcChar(crc: number, code: number): number {
  return TABLE[(crc ^ code) & 0xff] ^ (crc >>> 8)
}

/** The checksum of what was fed, as zlib's crc32 gives it (unsigned 32-bit). */
export function crcEnd(crc: number): number {
  return ~crc >>> 0
}
