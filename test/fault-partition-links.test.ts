// Partitions between a worker and a server, on hosts of their own (network namespaces; the
// harness of test/hosts-netns.test.ts), mid-BSP-run with R = 2, paths cut by blackhole routes:
//   - a worker cut off from one server only (for 4 s; its heartbeats still reach the scheduler, so
//     nobody is declared dead): its requests to that server are held by TCP and go through once the path
//     heals; the other worker waits at the BSP barrier meanwhile;
//   - the path between a worker and a server flapping several times inside one clock.
// Both end bit-identical to the fault-free run. Slow (three runs).
import { test } from 'uvu';
import { PartitionRuns, sleep } from './helpers/partitions.ts';

const runs = new PartitionRuns();

test('a worker cut off from one server only resumes when the path heals, and the run equals a fault-free one', async () => {
  await runs.scenario('worker-from-server', async (live) => {
    live.hosts.setPath('worker0', 'ps1', false);
    try { await sleep(4_000); } finally { live.hosts.setPath('worker0', 'ps1', true); }
  });
});

test('a path flapping five times inside one clock changes nothing', async () => {
  await runs.scenario('flapping', async (live) => {
    for (let i = 0; i < 5; i++) {
      live.hosts.setPath('worker1', 'ps0', false);
      try { await sleep(150); } finally { live.hosts.setPath('worker1', 'ps0', true); }
      await sleep(100);
    }
  });
});

test.run();
