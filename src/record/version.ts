// The release a recording names (package.json's version, read once).
import { readFileSync } from 'node:fs'

export const APP_VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version
