// The Kubernetes manifests `hybridps kubernetes` writes, checked the way the cluster would use
// them: the objects and fields the training operator and the kubelet read, the checked-in
// examples equal to a fresh render, the TF_CONFIG the operator injects (and the plain Jobs' env)
// mapped to the right role by the same code `hybridps run` uses, and then the TFJob's pods run as
// real processes, each with its own loopback address standing in for its pod IP, with the
// manifest's command, arguments, env and mounts: servers and workers started before the
// scheduler wait for it, the job trains, the scheduler (the chief) exits 0 at the job's end and
// the servers follow. Exit codes: 200 when the scheduler never comes up, 2 for a bad TF_CONFIG.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { clusterEnvFromProcess } from '../src/launch/cluster-env.ts';
import { operatorTfConfig, NVIDIA_CAPABILITIES } from '../src/launch/kubernetes.ts';
import { EXIT } from '../src/launch/exit-codes.ts';
import { tmp } from './helpers/train.ts';
import { Pods, podHost, replicas, localPaths } from './helpers/pods.ts';
import { makeLocalTls } from '../src/launch/tls-certs.ts';

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const dir = tmp('hps-k8s-');
type Obj = any; // eslint-disable-line @typescript-eslint/no-explicit-any

function hybridps(args: string[], env: Record<string, string> = {}, timeout = 120_000) {
  return spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { encoding: 'utf8', timeout, cwd: ROOT, env: { ...process.env, HYBRIDPS_LOG: 'warn', ...env } });
}

/** The flags the checked-in examples (deploy/kubernetes/) are rendered with; the README there repeats them. */
const EXAMPLE = ['samples/dlrm', '--data', '/data/train.tsv', '--image', 'ghcr.io/example/hybridps:0.1.0', '--servers', '2', '--workers', '2',
  '--replicas', '2', '--checkpoint-dir', '/checkpoints/dlrm', '--checkpoint-every', '1000', '--tls-secret', 'hybridps-tls'];

function render(args: string[]): Obj[] {
  const r = hybridps(['kubernetes', ...args]);
  assert.is(r.status, 0, r.stderr);
  return parseAllDocuments(r.stdout).map((d) => d.toJS());
}

const podSpec = (template: Obj) => template.spec;
const mainContainer = (template: Obj) => podSpec(template).containers[0];

test('the TFJob: what the operator and the kubelet read', () => {
  const [cm, job] = render([...EXAMPLE, '--kind', 'tfjob']);
  assert.is(cm.kind, 'ConfigMap');
  const cfg = JSON.parse(cm.data['config.json']);
  assert.is(cfg.data, '/data/train.tsv');
  assert.is(cfg.servers, 2);
  assert.is(job.apiVersion, 'kubeflow.org/v1');
  assert.is(job.kind, 'TFJob');
  const specs = job.spec.tfReplicaSpecs;
  assert.equal(Object.keys(specs).sort(), ['Chief', 'PS', 'Worker']);
  assert.is(specs.PS.replicas, 2);
  assert.is(specs.Worker.replicas, 2);
  for (const [type, spec] of Object.entries<Obj>(specs)) {
    assert.is(spec.restartPolicy, 'ExitCode', type);
    const c = mainContainer(spec.template);
    assert.is(c.name, 'tensorflow', `${type}: the operator injects TF_CONFIG into the container named tensorflow`);
    assert.equal(c.ports, [{ name: 'tfjob-port', containerPort: 2222 }]);
    assert.equal(c.command, ['hybridps']);
    assert.ok(c.args.includes('--host') && c.args[c.args.indexOf('--host') + 1] === '$(POD_IP)', `${type} binds to its pod IP`);
    assert.ok(c.env.some((e: Obj) => e.name === 'POD_IP' && e.valueFrom.fieldRef.fieldPath === 'status.podIP'));
    const secretVol = podSpec(spec.template).volumes.find((v: Obj) => v.name === 'secret');
    assert.is(secretVol.secret.secretName, 'hybridps-secret');
    // The certificates from a Secret too (--tls-secret), passed to every role.
    const tlsVol = podSpec(spec.template).volumes.find((v: Obj) => v.name === 'tls');
    assert.is(tlsVol.secret.secretName, 'hybridps-tls', type);
    assert.ok(c.volumeMounts.some((m: Obj) => m.name === 'tls' && m.mountPath === '/etc/hybridps/tls' && m.readOnly), `${type} mounts the TLS Secret`);
    for (const [flag, file] of [['--tls-cert', 'tls.crt'], ['--tls-key', 'tls.key'], ['--tls-ca', 'ca.crt']]) {
      assert.is(c.args[c.args.indexOf(flag) + 1], `/etc/hybridps/tls/${file}`, `${type} ${flag}`);
    }
  }
  const worker = mainContainer(specs.Worker.template);
  assert.is(worker.resources.limits['nvidia.com/gpu'], 1);
  const caps = worker.env.find((e: Obj) => e.name === 'NVIDIA_DRIVER_CAPABILITIES');
  assert.is(caps.value, NVIDIA_CAPABILITIES);
  assert.ok(caps.value.split(',').includes('graphics'), 'without graphics the NVIDIA toolkit mounts no Vulkan ICD');
  assert.ok(worker.volumeMounts.some((m: Obj) => m.mountPath === '/checkpoints'), 'workers write dense checkpoints');
  const ps = mainContainer(specs.PS.template);
  assert.ok(ps.args.includes('--checkpoint-root'), 'servers may write shards under /checkpoints');
  const chief = mainContainer(specs.Chief.template);
  assert.is(chief.args[chief.args.indexOf('--job-workers') + 1], '2', 'the chief exits at the job end');
  assert.is(chief.args[chief.args.indexOf('--replicas') + 1], '2');
});

test('the plain Jobs: a headless Service for the scheduler, Indexed Jobs, exit codes in podFailurePolicy', () => {
  const objs = render([...EXAMPLE, '--kind', 'plain']);
  assert.equal(objs.map((o) => `${o.kind}/${o.metadata.name}`), ['ConfigMap/hybridps-train', 'Service/hybridps-scheduler', 'Job/hybridps-scheduler', 'Job/hybridps-server', 'Job/hybridps-worker']);
  const svc = objs[1];
  assert.is(svc.spec.clusterIP, 'None');
  for (const job of objs.slice(2)) {
    assert.is(job.spec.completionMode, 'Indexed');
    assert.is(podSpec(job.spec.template).restartPolicy, 'Never', 'podFailurePolicy needs restartPolicy Never');
    const rule = job.spec.podFailurePolicy.rules[0];
    assert.is(rule.action, 'FailJob');
    assert.equal(rule.onExitCodes.values, [EXIT.failed, EXIT.badConfig]);
  }
  assert.is(objs[3].spec.completions, 2);
});

test('the checked-in examples are what the command writes', () => {
  for (const kind of ['tfjob', 'plain']) {
    const r = hybridps(['kubernetes', ...EXAMPLE, '--kind', kind]);
    assert.is(r.status, 0, r.stderr);
    const file = join(ROOT, 'deploy/kubernetes', `dlrm-${kind}.yaml`);
    assert.fixture(readFileSync(file, 'utf8'), r.stdout);
  }
});

test('bad flags: named, exit 2, nothing written', () => {
  const r = hybridps(['kubernetes', 'samples/dlrm', '--image', 'x', '--data', 'train.tsv']);
  assert.is(r.status, EXIT.badConfig);
  assert.match(r.stderr, /--data must be a path inside the pods under \/data\//);
  const r2 = hybridps(['kubernetes', 'samples/dlrm', '--data', '/data/t.tsv']);
  assert.is(r2.status, EXIT.badConfig);
  assert.match(r2.stderr, /--image is required/);
});

test('the TF_CONFIG the operator injects, and the plain Jobs\' env, start each role where it should', () => {
  const [, job] = render([...EXAMPLE, '--kind', 'tfjob']);
  const scheduler = 'ws://hybridps-chief-0.default.svc:2222';
  for (const [type, role, n] of [['chief', 'scheduler', 1], ['ps', 'server', 2], ['worker', 'worker', 2]] as const) {
    for (let i = 0; i < n; i++) {
      const env = clusterEnvFromProcess({ TF_CONFIG: operatorTfConfig(job, type, i) });
      assert.is(env.role, role);
      assert.is(env.index, i);
      assert.is(env.schedulerUrl, scheduler);
      assert.is(env.servers, 2);
      assert.is(env.workers, 2);
    }
  }
  const plain = render([...EXAMPLE, '--kind', 'plain']);
  for (const job2 of plain.slice(2)) {
    const c = mainContainer(job2.spec.template);
    const env: Record<string, string> = {};
    for (const e of c.env) {
      if (e.value !== undefined) env[e.name] = e.value;
      else if (e.valueFrom.fieldRef.fieldPath.includes('job-completion-index')) env[e.name] = '1';
    }
    const got = clusterEnvFromProcess(env);
    assert.is(got.role, job2.metadata.labels['hybridps.io/role']);
    if (got.role !== 'scheduler') {
      assert.is(got.schedulerUrl, 'ws://hybridps-scheduler.default.svc:2222');
      assert.is(got.index, 1);
    }
  }
});

test('exit codes a restart policy can read: 200 when the scheduler never comes up, 2 for a bad TF_CONFIG', () => {
  const secret = join(dir, 'secret-file');
  writeFileSync(secret, 'k8s-test-secret-0123456789');
  const tf = JSON.stringify({ cluster: { chief: ['no-such-scheduler.invalid:2222'], ps: ['127.0.0.1:0'] }, task: { type: 'ps', index: 0 } });
  const r = hybridps(['run', '--secret-file', secret], { TF_CONFIG: tf, HYBRIDPS_STARTUP_WAIT_S: '2', HYBRIDPS_LOG: 'info' });
  assert.is(r.status, EXIT.peerUnreachable, r.stderr);
  assert.match(r.stderr, /no-such-scheduler\.invalid does not resolve/);
  assert.match(r.stderr, /was not reachable within 2 s/);
  const r2 = hybridps(['run', '--secret-file', secret], { TF_CONFIG: '{not json' });
  assert.is(r2.status, EXIT.badConfig, r2.stderr);
  assert.match(r2.stderr, /TF_CONFIG is not valid JSON/);
});

test('the TFJob\'s pods as processes, over mutual TLS: they wait for the scheduler, train, and all exit 0 at the job end', async () => {
  const data = join(dir, 'data');
  mkdirSync(data, { recursive: true });
  const gen = hybridps(['gen-data', '--out', join(data, 'train.tsv'), '--samples', '3000', '--seed', '3', '--rows-per-table', '40']);
  assert.is(gen.status, 0, gen.stderr);
  const tiny = JSON.stringify({ numTables: 26, dim: 4, bottom: [13, 8, 4], top: [8, 1], rowsPerTable: 40 });
  const [cm, job] = render(['samples/dlrm', '--data', '/data/train.tsv', '--image', 'local', '--servers', '2', '--workers', '2',
    '--model', tiny, '--batch', '32', '--steps', '8', '--eval-samples', '100', '--tls-secret', 'hybridps-tls']);
  // The mounts, as the kubelet would lay them out: each mountPath is a directory here.
  const mounts: Record<string, string> = { '/etc/hybridps/secret': join(dir, 'secret'), '/etc/hybridps/train': join(dir, 'train'), '/data': data, '/etc/hybridps/tls': join(dir, 'tls') };
  // One certificate for every pod, as one Secret gives: the cluster name in it, not the pod IPs.
  const tls = makeLocalTls(join(dir, 'pki'));
  mkdirSync(mounts['/etc/hybridps/tls']!, { recursive: true });
  for (const [file, from] of [['tls.crt', tls.roles.server.cert], ['tls.key', tls.roles.server.key], ['ca.crt', tls.ca]] as const) {
    writeFileSync(join(mounts['/etc/hybridps/tls']!, file), readFileSync(from));
  }
  mkdirSync(mounts['/etc/hybridps/secret']!, { recursive: true });
  mkdirSync(mounts['/etc/hybridps/train']!, { recursive: true });
  writeFileSync(join(mounts['/etc/hybridps/secret']!, 'secret'), 'k8s-test-secret-0123456789');
  writeFileSync(join(mounts['/etc/hybridps/train']!, 'config.json'), localPaths(mounts)(cm.data['config.json']));

  // Pod IPs: one loopback address per pod; the operator's DNS names map to them.
  const ip = new Map<string, string>();
  let n = 0;
  const base = 20 + (process.pid % 200);
  for (const t of ['ps', 'worker', 'chief'] as const) for (let i = 0; i < replicas(job, t); i++) ip.set(podHost(job, t, i), `127.77.${base}.${++n}`);
  const pods = new Pods(job, { ip, mounts });
  const guard = setTimeout(() => pods.killAll(), 200_000);
  try {
    // Servers and workers first, as pods often come up: they must wait for the scheduler's name.
    const [server0] = pods.startAll('ps');
    pods.startAll('worker');
    await pods.waitForLog(server0!, 'waiting for ws://');
    const chief = pods.start('chief', 0);
    const { codes, report } = await pods.exits();
    assert.equal(codes, pods.all.map(() => 0), report);
    assert.match(chief.log.join(''), /the job has ended/);
    for (const p of pods.all) assert.match(p.log.join(''), /links are TLS, both ends verified/, `${p.name} ran over TLS`);
    for (const p of pods.all.filter((q) => q.type === 'worker')) assert.match(p.log.join(''), /result/, `${p.name} reported its result`);
  } finally {
    clearTimeout(guard);
    pods.killAll();
  }
});

test.run();
