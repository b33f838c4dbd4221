// The package entry for embedding apps: the live plugin, its types, and the pieces they configure it with.
export { default, type LiveOptions, type LiveApi } from './plugins/live.ts'
export { default as healthRoutes } from './routes/health.ts'
export { buildApp } from './app.ts'
export { loadConfig, ConfigError, type Config } from './config.ts'
export type { Bus, TopicInfo } from './core/bus.ts'
export { MemoryBus } from './core/bus.ts'
export { LiveError, ErrorCode, CloseCode, type BusEvent } from './core/protocol.ts'
