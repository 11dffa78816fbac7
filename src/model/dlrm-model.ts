// DLRM as a model module (see model-module.ts): the built-in model of samples/dlrm. Its dense
// features are the bottom MLP's input, the first `numTables` categorical columns its tables.
import { DLRM_PRESETS, dlrmSpec, validateDlrmConfig, type DlrmConfig } from './dlrm.ts';
import { categoricalColumn, defineModel, type ModelConfig } from './model-module.ts';

type Config = DlrmConfig & ModelConfig;

export const model = defineModel<Config>({
  name: 'dlrm',
  defaults: DLRM_PRESETS.small as Config,
  presets: DLRM_PRESETS as Record<string, Config>,
  validate(c) {
    const bad: string[] = [];
    for (const k of ['numDense', 'numTables', 'dim'] as const) {
      if (!Number.isInteger(c[k]) || c[k] < 1) bad.push(`model.${k} must be an integer >= 1 (got ${JSON.stringify(c[k])})`);
    }
    if (c.numDense !== 13) bad.push(`the Criteo layout has 13 dense features; the model takes ${c.numDense}`);
    if (c.numTables > 26) bad.push(`the Criteo layout has 26 categorical features; the model has ${c.numTables} tables`);
    try { validateDlrmConfig(c); } catch (e) { bad.push((e as Error).message); }
    return bad;
  },
  spec: (c, o) => dlrmSpec(c, o),
  toBatch(r, c) {
    return {
      B: r.size,
      inputs: { dense_x: r.dense.subarray(0, r.size * r.denseWidth), labels: r.labels.subarray(0, r.size) },
      tables: Array.from({ length: c.numTables }, (_, t) => categoricalColumn(r, t)),
    };
  },
});
