// Finding and loading a model module (src/model/model-module.ts): a built-in name ("dlrm") or a
// file, relative to the sample directory that names it, imported at run time. A run carries the
// resolved reference (the name, or the absolute path) in its TrainConfig, so the launcher and
// every worker (also one started from TF_CONFIG) load the same module. Errors name the file and
// what is missing.
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BUILTIN_MODELS } from '../model/builtin-models.ts';
import type { ModelConfig, ModelModule } from '../model/model-module.ts';

const isBuiltinName = (ref: string) => /^[A-Za-z0-9_-]+$/.test(ref);

/** A sample's "module" as a run's reference: a built-in name as it is, a file as an absolute path (which must exist). */
export function resolveModelRef(ref: string, baseDir: string): string {
  if (isBuiltinName(ref)) {
    if (!BUILTIN_MODELS[ref]) throw new Error(`model module "${ref}": no built-in model by that name (built in: ${Object.keys(BUILTIN_MODELS).join(', ')}; a file is given as a path, e.g. "./model.ts")`);
    return ref;
  }
  const path = isAbsolute(ref) ? ref : resolve(baseDir, ref);
  if (!existsSync(path)) throw new Error(`model module ${ref}: no such file (${path})`);
  return path;
}

const cache = new Map<string, Promise<ModelModule>>();

/** The module a reference names (each one imported once per process). */
export function loadModelModule(ref: string): Promise<ModelModule> {
  let p = cache.get(ref);
  if (!p) cache.set(ref, (p = importModule(ref)));
  return p;
}

async function importModule(ref: string): Promise<ModelModule> {
  const builtin = BUILTIN_MODELS[ref];
  if (builtin) return builtin;
  if (!isAbsolute(ref)) throw new Error(`model module ${ref}: expected a built-in name or an absolute path (resolveModelRef makes one)`);
  let ns: Record<string, unknown>;
  try { ns = await import(pathToFileURL(ref).href) as Record<string, unknown>; } catch (e) {
    throw new Error(`model module ${ref} failed to load: ${(e as Error).message}`);
  }
  const m = (ns.model ?? (ns.default as Record<string, unknown> | undefined)?.model ?? ns.default) as Partial<ModelModule> | undefined;
  const missing = !m || typeof m !== 'object' ? ['model']
    : [['name', 'string'], ['defaults', 'object'], ['validate', 'function'], ['spec', 'function'], ['toBatch', 'function']]
      .filter(([k, t]) => typeof (m as Record<string, unknown>)[k!] !== t).map(([k, t]) => `model.${k} (${t})`);
  if (missing.length) {
    throw new Error(`model module ${ref} must export \`model\` (see docs/models.md: export const model = defineModel({ name, defaults, validate, spec, toBatch })); missing: ${missing.join(', ')}`);
  }
  return m as ModelModule;
}

/** The configuration a run trains: the module's preset (or defaults) with `overrides` on top, checked by the module. */
export function resolveModelConfig(mod: ModelModule, preset: string | undefined, overrides: Record<string, unknown> = {}): ModelConfig {
  let base = mod.defaults;
  if (preset !== undefined) {
    const named = mod.presets?.[preset];
    if (!named) throw new Error(`--preset ${preset}: the ${mod.name} model has ${mod.presets ? `presets ${Object.keys(mod.presets).join(', ')}` : 'no presets'}`);
    base = named;
  }
  const config = { ...base, ...overrides } as ModelConfig;
  checkModelConfig(mod, config);
  return config;
}

/** Throws one message listing what the module finds wrong with `config`. */
export function checkModelConfig(mod: ModelModule, config: ModelConfig): void {
  const bad = Number.isInteger(config.rowsPerTable) && config.rowsPerTable >= 1 ? [] : [`model.rowsPerTable must be an integer >= 1 (got ${JSON.stringify(config.rowsPerTable)})`];
  bad.push(...mod.validate(config));
  if (bad.length) throw new Error(`invalid ${mod.name} model configuration:\n  ${bad.join('\n  ')}`);
}
