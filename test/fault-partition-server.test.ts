// Partitions around the scheduler, on hosts of their own (network namespaces; the harness of
// test/hosts-netns.test.ts), mid-BSP-run with R = 2, links cut by blackhole routes and healed:
//   - a server cut off from the scheduler but still reachable by the workers: it is declared dead
//     and its ranges move; when the path heals it registers again, is fenced (it drops what it
//     held, now stale) and takes its rows over afresh (src/server/fencing.ts);
//   - the scheduler cut off from everyone for longer than the heartbeat timeout: it keeps its view
//     (no member heard at all means it is the one cut off), and training goes on.
// Both end bit-identical to the fault-free run. Slow (three runs): kept beside the default run's
// other fault tests.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PartitionRuns, logOf, until } from './helpers/partitions.ts';
import { slowestStep } from './helpers/pod-run.ts';

const runs = new PartitionRuns();

test('a server cut off from the scheduler (reachable by workers) is declared dead, fenced on its return, and the run equals a fault-free one', async () => {
  const r = await runs.scenario('server-from-scheduler', async (live) => {
    live.hosts.setPath('ps1', 'chief0', false);
    try {
      await until('the scheduler to declare server-1 dead', () => /peer lost node=server-1/.test(logOf(live, 'chief-0')));
      // Training goes on without it for a few steps, so the rows it holds are stale when it returns.
      const dead = slowestStep(live.workers);
      await until('three steps without server-1', () => slowestStep(live.workers) >= dead + 3);
    } finally {
      live.hosts.setPath('ps1', 'chief0', true);
    }
  });
  const ps1 = r.logsByPod.get('ps-1') ?? '';
  assert.match(ps1, /registered again after being declared dead/, `server-1 was fenced and started over:\n${ps1.slice(-3000)}`);
  assert.match(ps1, /handoff complete/, 'and took its rows over');
});

test('the scheduler cut off from everyone past the heartbeat timeout keeps its view; healed, training goes on and equals a fault-free run', async () => {
  const r = await runs.scenario('scheduler-isolated', async (live) => {
    live.hosts.setLink('chief0', false);
    try {
      await until('the scheduler to notice it is cut off', () => /this scheduler looks cut off/.test(logOf(live, 'chief-0')));
    } finally {
      live.hosts.setLink('chief0', true);
    }
  });
  assert.not.match(r.logsByPod.get('chief-0') ?? '', /peer lost/, 'no member was declared dead');
});

test.run();
