// The package entry for embedding apps: the live plugin, its types, and the pieces they configure it
// with. Hooks come from `realtime/hooks`, the whole service (buildApp) from `realtime/app`, the SDK
// from `realtime/client`: one import path for each public thing.
export { default, type LiveOptions, type LiveApi } from './plugins/live.js'
export { default as healthRoutes } from './routes/health.js'
export { default as metrics } from './plugins/metrics.js'
export { loadConfig, ConfigError, type Config } from './config.js'
export type { LiveSettings, BusSettings, HookSettings } from './core/settings.js'
export type { Bus, TopicInfo } from './core/bus.js'
export { MemoryBus } from './core/bus.js'
export { LiveError, ErrorCode, CloseCode, type BusEvent } from './core/protocol.js'
