// Partitions around the scheduler, on hosts of their own (network namespaces; the harness of
// test/hosts-netns.test.ts), mid-BSP-run with R = 2, links cut by blackhole routes and healed:
//   - a server cut off from the scheduler but still reachable by the workers: it is declared dead
//     and its ranges move; when the path heals it registers again, is fenced (it drops what it
//     held, now stale) and takes its rows over afresh (src/server/fencing.ts);
//   - a server coming back whose take-over source is cut off mid-way (and declared dead): it
//     drops what it took and takes those ranges from the next holder under the new view;
//   - the scheduler cut off from everyone for longer than the heartbeat timeout: it keeps its view
//     (no member heard at all means it is the one cut off), and training goes on.
// All end bit-identical to the fault-free run. Slow (four runs): kept beside the default run's
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

test('a take-over whose source is cut off mid-way is taken again from the next holder under the new view, and the run equals a fault-free one', async () => {
  // server-1 is declared dead, then comes back while its path to server-2 is cut: its take-over
  // gets server-0's ranges but hangs on server-2's. Then server-2 is cut off too and declared
  // dead. server-1 must not finish with partial rows (it did: `npm run chaos -- --partitions`,
  // max |diff| 0.15): it drops them and takes everything from server-0 under the new view.
  const r = await runs.scenario('take-over-source-cut', async (live) => {
    const ps1 = () => logOf(live, 'ps-1').split('registered again after being declared dead')[1] ?? '';
    live.hosts.setLink('ps1', false);
    let pathCut = false, ps2Cut = false;
    try {
      await until('the scheduler to declare server-1 dead', () => /peer lost node=server-1/.test(logOf(live, 'chief-0')));
      const dead = slowestStep(live.workers);
      await until('three steps without server-1', () => slowestStep(live.workers) >= dead + 3);
      live.hosts.setPath('ps1', 'ps2', false);
      pathCut = true;
      live.hosts.setLink('ps1', true);
      await until('server-1 to take server-0\'s rows (server-2\'s cannot come)', () => /rows taken over from=server-0/.test(ps1()));
      assert.not.match(ps1(), /handoff complete/, 'the take-over waits for server-2');
      live.hosts.setLink('ps2', false);
      ps2Cut = true;
      await until('the scheduler to declare server-2 dead', () => /peer lost node=server-2/.test(logOf(live, 'chief-0')));
      await until('server-1 to finish its take-over under the new view', () => /handoff complete/.test(ps1()));
    } finally {
      live.hosts.setLink('ps1', true);
      if (ps2Cut) live.hosts.setLink('ps2', true);
      if (pathCut) live.hosts.setPath('ps1', 'ps2', true);
    }
  });
  const ps1 = (r.logsByPod.get('ps-1') ?? '').split('registered again after being declared dead')[1] ?? '';
  assert.match(ps1, /take-over incomplete: a source failed mid-way[^\n]*failed="?server-2/, `server-1's first attempt failed on server-2:\n${ps1.slice(-3000)}`);
  assert.match(ps1, /handoff complete from=server-0 [^\n]*attempts=2/, 'and the second took everything from server-0');
  assert.match(r.logsByPod.get('ps-2') ?? '', /registered again after being declared dead[\s\S]*handoff complete/, 'server-2 came back and took its rows over');
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
