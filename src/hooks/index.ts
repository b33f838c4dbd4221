// The hook API for embedding apps and HOOKS modules: the registry types, DROP, and the two reference hooks.
export {
  DROP,
  HookRegistry,
  type HookOptions,
  type PublishHook,
  type InboundHook,
  type SubscribeHook,
  type MethodOptions,
  type ClientInfo,
  type HookFigures
} from '../core/hooks.js'
export { default as scorer, OpportunityScorer, loadScorerModel } from './scorer.js'
export { default as remoteModel } from './remote-model.js'
export { default as liveHooks } from '../plugins/hooks.js'
