// The model modules shipped inside the package, by the name a sample.json gives as "module"
// (a name without a path separator or an extension); any other "module" is a file.
import { model as dlrm } from './dlrm-model.ts';
import type { ModelModule } from './model-module.ts';

export const BUILTIN_MODELS: Readonly<Record<string, ModelModule>> = { dlrm: dlrm as unknown as ModelModule };
