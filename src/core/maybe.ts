// Values that are there now or later: the in-memory path stays synchronous (no promise, no
// microtask) and only a backplane or an async hook makes it a promise.

export type MaybePromise<T> = T | Promise<T>

export const isThenable = <T>(value: MaybePromise<T>): value is Promise<T> => typeof (value as Promise<T> | null)?.then === 'function'

/** Applies `fn` to a value or a promise of one, staying synchronous for plain values. */
export function mapMaybe<T, R>(value: MaybePromise<T>, fn: (value: T) => R): MaybePromise<Awaited<R>> | R {
  return isThenable(value) ? (value.then(fn) as Promise<Awaited<R>>) : fn(value)
}
