// `hybridps launch <sample>` and `hybridps compare <sample>`: flags -> config -> run(s) -> summary.
// With --json, people-facing output goes to stderr and stdout ends with one JSON object.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readSample, trainConfigFromFlags, type TrainFlags } from '../train/from-flags.ts';
import { runTraining, formatSummary, summaryJson } from './train-run.ts';
import { comparisonTable, writeReport } from './compare-report.ts';

export async function trainCommand(sampleDir: string, flags: TrainFlags & { keepGoing?: boolean }): Promise<void> {
  const out = flags.json ? process.stderr : process.stdout;
  const cfg = await trainConfigFromFlags(flags, readSample(sampleDir), (s) => out.write(s + '\n'));
  const summary = await runTraining(cfg, { out, keepGoing: !!flags.keepGoing });
  out.write(formatSummary(summary) + '\n');
  if (flags.json) process.stdout.write(JSON.stringify(summaryJson(summary)) + '\n');
}

export async function compareCommand(sampleDir: string, flags: TrainFlags & { report?: string }): Promise<void> {
  const out = flags.json ? process.stderr : process.stdout;
  const sample = readSample(sampleDir);
  if (flags.mode) throw new Error('compare runs both modes; leave out --mode');
  const runs = [];
  for (const mode of ['hybrid', 'pure-ps'] as const) {
    const cfg = await trainConfigFromFlags({ ...flags, mode }, sample, (s) => out.write(s + '\n'));
    const s = await runTraining(cfg, { out, label: mode });
    out.write(formatSummary(s) + '\n\n');
    runs.push(s);
  }
  const report = resolve(flags.report ?? join('runs', `compare-${new Date().toISOString().replace(/[:.]/g, '-')}.html`));
  mkdirSync(resolve(report, '..'), { recursive: true });
  await writeReport(report, runs);
  out.write(comparisonTable(runs) + '\n');
  out.write(`report: ${report}\n`);
  if (flags.json) {
    const [hybrid, pureps] = runs.map(summaryJson);
    process.stdout.write(JSON.stringify({ hybrid, pureps, report }) + '\n');
  }
}
