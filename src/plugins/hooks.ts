// The `liveHooks` decorator: register it before the live plugin to add hooks first, or let the live plugin create it.
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { HookRegistry, type HookLimits, type ModelSource } from '../core/hooks.js'

declare module 'fastify' {
  interface FastifyInstance {
    liveHooks: HookRegistry
    /** Every model source (MODELS, onnxModel, remoteModel), once one is registered: the models plugins create it. */
    liveModels: ModelSource[]
  }
}

export type LiveHooksOptions = Partial<HookLimits>

const hooksPlugin: FastifyPluginAsync<LiveHooksOptions> = async (app, options) => {
  if (app.hasDecorator('liveHooks')) throw new Error('live-hooks is already registered')
  const limits: HookLimits = {
    hookBudget: options.hookBudget ?? 5,
    hookFailures: options.hookFailures ?? 5,
    hookCooldown: options.hookCooldown ?? 10_000
  }
  app.decorate('liveHooks', new HookRegistry(limits, app.log))
}

export default fp(hooksPlugin, { name: 'live-hooks', fastify: '5.x' })
