// The hook API for embedding apps and HOOKS modules: the registry types, DROP, and the two reference hooks.
export { DROP, HookRegistry, type HookOptions, type PublishHook, type InboundHook, type SubscribeHook, type MethodOptions, type LiveClient, type HookFigures } from './registry.ts'
export { default as scorer, OpportunityScorer, loadScorerModel } from './scorer.ts'
export { default as remoteModel } from './remote-model.ts'
export { default as liveHooks } from '../plugins/hooks.ts'
