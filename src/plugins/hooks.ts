// The `liveHooks` decorator: register it before the live plugin to add hooks first, or let the live plugin create it.
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { HookRegistry, type ModelSource } from '../core/hooks.js'
import { HookSettings } from '../core/settings.js'
import { loadSettings } from '../config.js'

declare module 'fastify' {
  interface FastifyInstance {
    liveHooks: HookRegistry
    /** Every model source (MODELS, onnxModel, remoteModel), once one is registered: the models plugins create it. */
    liveModels: ModelSource[]
  }
}

/** The hook registry's limits (README "Configuration"; defaults for those not given). */
export type LiveHooksOptions = Partial<HookSettings>

const hooksPlugin: FastifyPluginAsync<LiveHooksOptions> = async (app, options) => {
  if (app.hasDecorator('liveHooks')) throw new Error('live-hooks is already registered')
  app.decorate('liveHooks', new HookRegistry(loadSettings(HookSettings, options), app.log))
}

export default fp(hooksPlugin, { name: 'live-hooks', fastify: '5.x' })
