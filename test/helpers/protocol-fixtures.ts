// One message of every kind a child sends (optional fields both present and absent), shared by
// the child-protocol test and its child process, so the test can compare what arrived.
import type { ChildMessage } from '../../src/launch/child-protocol.ts';

const bytes = { pull: 1024, push: 2048.5, allreduce: 0 };

export const CHILD_MESSAGES: ChildMessage[] = [
  { kind: 'ready', ready: { role: 'worker', nodeId: 'worker-3', pid: 0 } },
  { kind: 'ready', ready: { role: 'scheduler', url: 'ws://127.0.0.1:4000', metrics: 'http://127.0.0.1:9100', pid: 0 } },
  { kind: 'progress', progress: { rank: 1, step: 7, loss: 0.6931, samples: 224, wallSec: 1.25, bytes, ms: { pull: 3.5, compute: 10 } } },
  { kind: 'eval', eval: { step: 7, samples: 400, positives: 100, logloss: 0.5, auc: 0.75 } },
  { kind: 'checkpoint', step: 8, dir: '/tmp/ckpt/step-8' },
  {
    kind: 'result', result: {
      model: 'dlrm', rank: 0, nodeId: 'worker-0', steps: 8, firstStep: 0, samples: 256, wallSec: 2.5, evalSec: 0, bytes, phaseMs: { pull: 28 }, denseHash: 'ab12',
      data: { lines: 1000, parsed: 900, split: 'stream', bad: 1, badLines: [{ file: '/data/train.tsv', line: 17, why: 'label is not 0 or 1' }] }, eval: { step: 8, samples: 100, positives: 25, logloss: 0.4, auc: 0.8 }, checkpoint: '/tmp/ckpt/step-8',
    },
  },
  {
    kind: 'result', result: {
      model: 'dlrm', rank: 1, nodeId: 'worker-1', steps: 8, firstStep: 0, samples: 256, wallSec: 2.5, evalSec: 0, bytes, phaseMs: {}, denseHash: 'ab12',
      data: { lines: 1000, parsed: 900, split: 'stream', bad: 0, badLines: [] },
    },
  },
];
