// A venue's REST answer read with a byte limit: the declared length is checked before the body,
// the body is read chunk by chunk and the read is cancelled once it passes the limit, so an answer
// of any size costs the server at most the limit (and its parse), never the whole of what was sent.

export class TooLargeError extends Error {
  constructor(
    readonly limitBytes: number,
    readonly setting: string
  ) {
    super(`answer larger than ${limitBytes} bytes (${setting})`)
  }
}

/** The body of `res` as JSON, refusing one of more than `limitBytes` (TooLargeError naming `setting`). */
export async function readJson(res: Response, limitBytes: number, setting: string): Promise<unknown> {
  if (res.body === null) throw new Error('empty answer')
  if (Number(res.headers.get('content-length')) > limitBytes) {
    await res.body.cancel().catch(() => {})
    throw new TooLargeError(limitBytes, setting)
  }
  const reader = res.body.getReader()
  const chunks: Uint8Array[] = []
  let length = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    length += value.byteLength
    if (length > limitBytes) {
      await reader.cancel().catch(() => {})
      throw new TooLargeError(limitBytes, setting)
    }
    chunks.push(value)
  }
  // One chunk (an answer read whole, a replay's) is decoded where it lies, not copied first.
  const bytes = chunks.length === 1 ? Buffer.from(chunks[0].buffer, chunks[0].byteOffset, length) : Buffer.concat(chunks, length)
  return JSON.parse(bytes.toString('utf8'))
}
