// The cost as tables grow: `npm run bench -- step --rows-per-table N --scale-rows M` runs the
// chosen step configurations (default: s2-w1-adagrad-bsp, the BSP target) at N rows per
// table (default the gpu preset's 100k) and then at M (e.g. 1000000: 26M rows, ~13 GB of rows and
// AdaGrad slots across the servers) in the same run, and prints each configuration's dataPathMs
// at M over N (target <= 1.25). The memory the larger run needs is checked before either starts.
import { configsOf, runStepClusterBench, type StepBenchArgs } from './step-cluster.ts';
import { BenchRefusal, FULL_SIZES, QUICK_SIZES, memoryNeed, memoryRefusal } from './step-configs.ts';
import { printTable } from './table.ts';

interface ConfigRow { name: string; dataPathMs: number; wireFloorMs: number; pull?: number; push?: number; dataPathPhases: Record<string, number>; fillSec: number }

export async function runStepScaleBench(args: StepBenchArgs & { scaleRows: number }): Promise<object> {
  const withDefault = { ...args, config: args.config ?? 's2-w1-adagrad-bsp' };
  const small = args.rowsPerTable ?? (args.quick ? QUICK_SIZES : FULL_SIZES).rowsPerTable;
  if (!Number.isInteger(args.scaleRows) || args.scaleRows <= small) throw new BenchRefusal(`--scale-rows ${args.scaleRows}: must be an integer above the ${small} rows per table of the first run`);
  const configs = configsOf(withDefault);
  const refusal = memoryRefusal(configs, args.scaleRows);
  if (refusal) throw new BenchRefusal(`--scale-rows ${args.scaleRows}: ${refusal}`);
  process.stderr.write(`[bench step] scale: ${small} then ${args.scaleRows} rows per table; the larger run needs ~${(memoryNeed(configs, args.scaleRows).bytes / 2 ** 30).toFixed(1)} GB\n`);
  const a = (await runStepClusterBench({ ...withDefault, rowsPerTable: small })) as { configs: ConfigRow[] };
  const b = (await runStepClusterBench({ ...withDefault, rowsPerTable: args.scaleRows })) as { configs: ConfigRow[] };
  const rows = a.configs.map((x, i) => {
    const y = b.configs[i]!;
    return {
      config: x.name, [`dataPath ${small}`]: x.dataPathMs, [`dataPath ${args.scaleRows}`]: y.dataPathMs,
      [`pull ${small}`]: x.dataPathPhases.pull, [`pull ${args.scaleRows}`]: y.dataPathPhases.pull,
      [`push ${small}`]: x.dataPathPhases.push, [`push ${args.scaleRows}`]: y.dataPathPhases.push,
      ratio: +(y.dataPathMs / x.dataPathMs).toFixed(3),
    };
  });
  printTable(`Step data path as tables grow (${small} -> ${args.scaleRows} rows per table, same run; ms, medians)`, rows);
  console.log('target (issue): dataPathMs at 1M rows per table <= 1.25 x at 100k, s2-w1-adagrad-bsp');
  return { bench: 'step-scale', rowsPerTable: [small, args.scaleRows], ratios: rows.map((r) => ({ config: r.config, ratio: r.ratio })), runs: [a, b], target: 1.25 };
}
