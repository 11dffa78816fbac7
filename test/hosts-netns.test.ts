// Separate hosts on this machine: the scheduler, two servers and two GPU workers each in a network
// namespace of its own (test/helpers/netns.ts), started exactly as a Kubernetes TFJob starts them
// (the pods of `hybridps kubernetes`, each `hybridps run` with the TF_CONFIG the operator would
// inject, naming the others by address: test/helpers/pods.ts). Nothing listens on 127.0.0.1; every
// byte between roles crosses a veth and a bridge. A BSP run across the five hosts ends with final
// parameters bit-identical to the same run on one host (`hybridps launch`).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { resolveCheckpoint } from '../src/train/checkpoint.ts';
import { tmp, readTrainingCheckpoint, maxDiff } from './helpers/train.ts';
import { Pods, podHost, replicas, localPaths, type PodType } from './helpers/pods.ts';
import { TestHosts } from './helpers/netns.ts';

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const dir = tmp('hps-hosts-');

function hybridps(args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { encoding: 'utf8', timeout: 240_000, cwd: ROOT, env: { ...process.env, HYBRIDPS_LOG: 'warn' } });
  assert.is(r.status, 0, `hybridps ${args[0]}: ${r.stderr}`);
  return r.stdout;
}

const TINY = JSON.stringify({ numTables: 26, dim: 4, bottom: [13, 8, 4], top: [8, 1], rowsPerTable: 40 });
const RUN = ['--servers', '2', '--workers', '2', '--model', TINY, '--batch', '32', '--steps', '10', '--eval-samples', '100', '--consistency', 'bsp'];

test('BSP across five hosts (scheduler, 2 servers, 2 workers) equals the same run on one host, bit for bit', async () => {
  const data = join(dir, 'data');
  mkdirSync(data, { recursive: true });
  hybridps(['gen-data', '--out', join(data, 'train.tsv'), '--samples', '4000', '--seed', '11', '--rows-per-table', '40']);

  // One host: the launcher on this machine.
  const oneHost = join(dir, 'one-host');
  hybridps(['launch', 'samples/dlrm', ...RUN, '--data', join(data, 'train.tsv'), '--checkpoint-dir', oneHost, '--json']);

  // Five hosts: the TFJob's pods in their namespaces.
  const [cm, job] = parseAllDocuments(hybridps(['kubernetes', 'samples/dlrm', ...RUN, '--data', '/data/train.tsv', '--image', 'local',
    '--checkpoint-dir', '/checkpoints/run'])).map((d) => d.toJS());
  const mounts: Record<string, string> = {
    '/etc/hybridps/secret': join(dir, 'secret'), '/etc/hybridps/train': join(dir, 'train'), '/data': data, '/checkpoints': join(dir, 'checkpoints'),
  };
  for (const d of Object.values(mounts)) mkdirSync(d, { recursive: true });
  writeFileSync(join(mounts['/etc/hybridps/secret']!, 'secret'), 'netns-test-secret-0123456789');
  writeFileSync(join(mounts['/etc/hybridps/train']!, 'config.json'), localPaths(mounts)(cm.data['config.json']));

  const hostOf = (t: PodType, i: number) => `${t}${i}`;
  const names: string[] = [];
  for (const t of ['chief', 'ps', 'worker'] as const) for (let i = 0; i < replicas(job, t); i++) names.push(hostOf(t, i));
  const hosts = TestHosts.create(names);
  const ip = new Map(names.map((n) => {
    const [, t, i] = /^([a-z]+)(\d+)$/.exec(n)!;
    return [podHost(job, t as PodType, Number(i)), hosts.host(n).ip] as const;
  }));
  const pods = new Pods(job, { ip, mounts, exec: (t, i) => hosts.exec(hostOf(t, i)) });
  const guard = setTimeout(() => pods.killAll(), 240_000);
  try {
    pods.start('chief', 0);
    pods.startAll('ps');
    pods.startAll('worker');
    const { codes, report } = await pods.exits();
    assert.equal(codes, pods.all.map(() => 0), report);
    for (const p of pods.all) assert.not.match(p.log.join(''), /127\.0\.0\.1/, `${p.name} used loopback:\n${p.log.join('')}`);
    assert.match(pods.all.find((p) => p.type === 'ps')!.log.join(''), /10\.77\.0\.\d+/, 'servers registered their namespace address');
  } finally {
    clearTimeout(guard);
    pods.killAll();
    hosts.destroy();
  }
  const cfg = JSON.parse(localPaths(mounts)(cm.data['config.json']));
  const a = await readTrainingCheckpoint(await resolveCheckpoint(oneHost), cfg);
  const b = await readTrainingCheckpoint(await resolveCheckpoint(join(mounts['/checkpoints']!, 'run')), cfg);
  assert.is(a.step, 10);
  assert.is(b.step, 10);
  assert.ok(a.tables.size === 26 && [...a.tables.values()].some((t) => t.size > 0), 'rows were trained');
  assert.is(maxDiff(a, b), 0, 'five hosts: bit-identical to one host');
  assert.is(maxDiff(b, a), 0, 'and no row only on one side');
});

test.run();
