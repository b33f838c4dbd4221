// The hook API for embedding apps and HOOKS modules: the registry types, DROP, models (ONNX in process,
// KServe v2 or HTTP remote) and the reference hooks.
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
export { default as scorer, Volatility, SHIPPED_MODELS } from './scorer.js'
export { models, onnxModel, type OnnxModelOptions, type ModelsOptions, type ModelFigures, type VersionFigures } from './models.js'
export { parseCard, type ModelCard } from './model-card.js'
export { default as remoteModel } from './remote-model.js'
export { default as liveHooks } from '../plugins/hooks.js'
