// What a venue's JSON is read as: objects are rows of unknown values, checked field by field.

export type Row = Record<string, unknown>

export const isRow = (x: unknown): x is Row => x !== null && typeof x === 'object' && !Array.isArray(x)

/** The rows of an array; anything else (and any non-object element) is none. */
export const rows = (x: unknown): Row[] => (Array.isArray(x) ? x.filter((r): r is Row => r !== null && typeof r === 'object') : [])
