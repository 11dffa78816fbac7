// `hybridps gen-data`: writes a synthetic Criteo-layout file from the planted model (see
// src/data/synthetic.ts) and prints the AUC and logloss of that model on the held-out lines, the
// bar a trained DLRM is measured against. Progress goes to stderr (a bar on a terminal, a line per
// 10% otherwise), so stdout holds only the summary and, with --json, one JSON object last.
import cliProgress from 'cli-progress';
import { generateSynthetic } from '../data/synthetic.ts';

export interface GenDataOptions { out: string; samples: number; seed: number; rowsPerTable: number; gzip: boolean; json: boolean }

export async function genDataCommand(opts: GenDataOptions): Promise<void> {
  const err = process.stderr;
  const bar = err.isTTY ? new cliProgress.SingleBar({
    format: 'gen-data {bar} {value}/{total} lines | ETA {eta_formatted}', hideCursor: true, stream: err,
  }, cliProgress.Presets.shades_classic) : null;
  let barStarted = false, nextReport = 0.1;
  const started = Date.now();
  const onProgress = (done: number, total: number) => {
    if (bar) {
      if (!barStarted) { bar.start(total, 0); barStarted = true; }
      bar.update(done);
    } else if (done / total >= nextReport || done === total) {
      err.write(`gen-data: ${done}/${total} lines (${((done / total) * 100).toFixed(0)}%)\n`);
      while (nextReport <= done / total) nextReport += 0.1;
    }
  };
  let s;
  try {
    s = await generateSynthetic({ out: opts.out, samples: opts.samples, seed: opts.seed, rowsPerTable: opts.rowsPerTable, gzip: opts.gzip, onProgress });
  } finally {
    bar?.stop();
  }
  const seconds = (Date.now() - started) / 1000;
  const say = (line: string) => process.stdout.write(line + '\n');
  say(`wrote ${s.out} (${s.samples} lines, ${(s.bytes / 1e6).toFixed(1)} MB${s.gzip ? ', gzip' : ''}) in ${seconds.toFixed(1)} s; sidecar ${s.metaPath}`);
  say(`  seed ${s.seed}, ${s.rowsPerTable} rows per table, positive rate ${s.positiveRate.toFixed(4)}`);
  say(`  planted model on the ${s.evalSamples} held-out lines (every 10th): AUC ${s.plantedAuc.toFixed(4)}, logloss ${s.plantedLogloss.toFixed(4)}`);
  if (opts.json) say(JSON.stringify({ ...s, seconds: +seconds.toFixed(2) }));
}
