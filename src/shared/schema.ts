// The numbers of the settings schemas (TypeBox): a default, bounds and the help line README's
// configuration table shows, in one shape for every plugin's settings.
import { Type } from '@sinclair/typebox'

export const Int = (def: number, minimum: number, maximum: number, description: string) => Type.Integer({ default: def, minimum, maximum, description })
export const Num = (def: number, minimum: number, maximum: number, description: string) => Type.Number({ default: def, minimum, maximum, description })
