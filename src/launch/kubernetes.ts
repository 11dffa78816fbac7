// Kubernetes manifests for a training job, rendered from the same validated TrainConfig that
// `launch` runs: a Kubeflow TFJob (training operator v1; it injects TF_CONFIG, which
// cluster-env.ts reads) or, for clusters without the operator, plain Indexed Jobs and a headless
// Service for the scheduler. What the pods need and why (docs/kubernetes.md):
// - every role binds to its pod IP (downward API) rather than to its DNS name, which a headless
//   Service publishes only once the pod is running: nothing waits on its own name;
// - servers and workers wait for the scheduler's name (--startup-wait-s) and exit 200 when it
//   never comes up; 1-127 are failures a restart does not cure (src/launch/exit-codes.ts), which
//   is exactly how `restartPolicy: ExitCode` (TFJob) and `podFailurePolicy` (Job) read codes;
// - the scheduler is the TFJob's chief, so it exits 0 once every worker has finished (--job-workers);
// - GPU workers ask for `nvidia.com/gpu` and the `graphics` driver capability, without which the
//   NVIDIA container toolkit mounts no Vulkan ICD and Dawn finds only a software adapter;
// - with a TLS Secret (`tls.crt`, `tls.key`, `ca.crt`, as cert-manager writes them) every pod
//   mounts it and passes --tls-*: one certificate for all pods works, because peers check the
//   cluster name in it (transport/tls.ts), not the pod's address or DNS name.
import type { TrainConfig } from '../train/config.ts';
import { ConfigError } from './exit-codes.ts';

export type ManifestKind = 'tfjob' | 'plain';

export interface KubernetesOptions {
  kind: ManifestKind;
  /** Job name: the prefix of every object and of the pods' DNS names. */
  name: string;
  namespace: string;
  /** An image with hybridps, Node 20+, the Vulkan loader (docs/kubernetes.md, "The image"). */
  image: string;
  /** The run, as `launch` would run it; its `data` (and checkpoint paths) are paths inside the pods. */
  config: TrainConfig;
  gpusPerWorker: number;
  /** A Secret with the cluster secret under the key `secret`. */
  secretName: string;
  /** A Secret with `tls.crt`, `tls.key` and `ca.crt` (mutual TLS on every link); absent: plain links. */
  tlsSecret?: string;
  /** PersistentVolumeClaim holding the data file, mounted read-only at /data on workers. */
  dataClaim: string;
  /** ReadWriteMany claim mounted at /checkpoints on servers and workers (when the run checkpoints). */
  checkpointClaim: string;
  /** Memory each server asks for (rows and optimizer slots live there), e.g. "8Gi". */
  serverMemory: string;
}

export const PORT = 2222;
const SECRET_DIR = '/etc/hybridps/secret';
const TLS_DIR = '/etc/hybridps/tls';
const CONFIG_DIR = '/etc/hybridps/train';
export const DATA_DIR = '/data';
export const CHECKPOINT_DIR = '/checkpoints';
/** Dawn needs the Vulkan ICD, which the NVIDIA toolkit mounts only with the graphics capability. */
export const NVIDIA_CAPABILITIES = 'compute,utility,graphics';

type Obj = Record<string, unknown>;

/** Why the options cannot make a working job, or null. */
export function kubernetesProblems(o: KubernetesOptions): string[] {
  const bad: string[] = [];
  if (!/^[a-z]([-a-z0-9]{0,40}[a-z0-9])?$/.test(o.name)) bad.push(`--name "${o.name}": a DNS label, lowercase letters, digits and '-', at most 42 characters`);
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(o.namespace)) bad.push(`--namespace "${o.namespace}" is not a valid namespace name`);
  if (!o.image) bad.push('--image is required: an image with hybridps and the Vulkan loader (docs/kubernetes.md)');
  if (!o.config.data.startsWith(`${DATA_DIR}/`)) bad.push(`--data must be a path inside the pods under ${DATA_DIR}/ (the claim ${o.dataClaim} is mounted there), got ${o.config.data}`);
  for (const [flag, dir] of [['--checkpoint-dir', o.config.checkpointDir], ['--resume', o.config.resume]] as const) {
    if (dir && !dir.startsWith(`${CHECKPOINT_DIR}/`)) bad.push(`${flag} must be under ${CHECKPOINT_DIR}/ (the claim ${o.checkpointClaim} is mounted there), got ${dir}`);
  }
  if (o.tlsSecret !== undefined && !/^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/.test(o.tlsSecret)) bad.push(`--tls-secret "${o.tlsSecret}" is not a valid Secret name`);
  if (!Number.isInteger(o.gpusPerWorker) || o.gpusPerWorker < 0) bad.push(`--gpus-per-worker must be an integer >= 0, got ${o.gpusPerWorker}`);
  return bad;
}

/** The Kubernetes objects of the job, in apply order. */
export function renderKubernetes(o: KubernetesOptions): Obj[] {
  const problems = kubernetesProblems(o);
  if (problems.length) throw new ConfigError(`cannot render the manifests:\n  ${problems.join('\n  ')}`);
  const configMap: Obj = {
    apiVersion: 'v1', kind: 'ConfigMap',
    metadata: { name: `${o.name}-train`, namespace: o.namespace, labels: labels(o) },
    data: { 'config.json': JSON.stringify(o.config, null, 2) + '\n' },
  };
  return o.kind === 'tfjob' ? [configMap, tfJob(o)] : [configMap, ...plainJobs(o)];
}

type Role = 'scheduler' | 'server' | 'worker';

function labels(o: KubernetesOptions, role?: Role): Record<string, string> {
  return { 'app.kubernetes.io/name': 'hybridps', 'app.kubernetes.io/instance': o.name, ...(role ? { 'hybridps.io/role': role } : {}) };
}

const usesCheckpoints = (o: KubernetesOptions) => !!(o.config.checkpointDir || o.config.resume);

/** The one container of a pod (named `tensorflow`, as the training operator expects). */
function container(o: KubernetesOptions, role: Role, env: Obj[]): Obj {
  const args = ['run', '--secret-file', `${SECRET_DIR}/secret`, '--host', '$(POD_IP)', '--port', String(PORT)];
  if (role === 'scheduler') args.push('--job-workers', String(o.config.workers), '--replicas', String(o.config.replicas));
  if (role === 'server' && usesCheckpoints(o)) args.push('--checkpoint-root', CHECKPOINT_DIR);
  if (role === 'worker') args.push('--config', `${CONFIG_DIR}/config.json`);
  if (o.tlsSecret) args.push('--tls-cert', `${TLS_DIR}/tls.crt`, '--tls-key', `${TLS_DIR}/tls.key`, '--tls-ca', `${TLS_DIR}/ca.crt`);
  const mounts: Obj[] = [{ name: 'secret', mountPath: SECRET_DIR, readOnly: true }];
  if (o.tlsSecret) mounts.push({ name: 'tls', mountPath: TLS_DIR, readOnly: true });
  if (role === 'worker') mounts.push({ name: 'train-config', mountPath: CONFIG_DIR, readOnly: true }, { name: 'data', mountPath: DATA_DIR, readOnly: true });
  if (role !== 'scheduler' && usesCheckpoints(o)) mounts.push({ name: 'checkpoints', mountPath: CHECKPOINT_DIR });
  const gpu = role === 'worker' && o.gpusPerWorker > 0;
  const resources: Obj = role === 'server' ? { requests: { memory: o.serverMemory, cpu: '2' } }
    : gpu ? { limits: { 'nvidia.com/gpu': o.gpusPerWorker } } : {};
  return {
    name: 'tensorflow', image: o.image, command: ['hybridps'], args,
    ports: [{ name: 'tfjob-port', containerPort: PORT }],
    env: [
      { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
      ...env,
      ...(gpu ? [{ name: 'NVIDIA_DRIVER_CAPABILITIES', value: NVIDIA_CAPABILITIES }] : []),
    ],
    volumeMounts: mounts, resources,
  };
}

function volumes(o: KubernetesOptions, role: Role): Obj[] {
  const v: Obj[] = [{ name: 'secret', secret: { secretName: o.secretName, defaultMode: 0o400 } }];
  if (o.tlsSecret) v.push({ name: 'tls', secret: { secretName: o.tlsSecret, defaultMode: 0o400 } });
  if (role === 'worker') {
    v.push({ name: 'train-config', configMap: { name: `${o.name}-train` } }, { name: 'data', persistentVolumeClaim: { claimName: o.dataClaim, readOnly: true } });
  }
  if (role !== 'scheduler' && usesCheckpoints(o)) v.push({ name: 'checkpoints', persistentVolumeClaim: { claimName: o.checkpointClaim } });
  return v;
}

function podTemplate(o: KubernetesOptions, role: Role, env: Obj[], extra: Obj = {}): Obj {
  return {
    metadata: { labels: labels(o, role) },
    spec: { ...extra, containers: [container(o, role, env)], volumes: volumes(o, role) },
  };
}

function tfJob(o: KubernetesOptions): Obj {
  // ExitCode: 128-255 restart the replica (200: the scheduler was not up yet; 137: OOM-killed, a
  // server rejoins and takes over rows by handoff), 1-127 fail the job.
  const replica = (role: Role, replicas: number) => ({ replicas, restartPolicy: 'ExitCode', template: podTemplate(o, role, []) });
  return {
    apiVersion: 'kubeflow.org/v1', kind: 'TFJob',
    metadata: { name: o.name, namespace: o.namespace, labels: labels(o) },
    spec: {
      runPolicy: { cleanPodPolicy: 'Running', backoffLimit: 6 },
      tfReplicaSpecs: {
        Chief: replica('scheduler', 1),
        PS: replica('server', o.config.servers),
        Worker: replica('worker', o.config.workers),
      },
    },
  };
}

function plainJobs(o: KubernetesOptions): Obj[] {
  const scheduler = `${o.name}-scheduler.${o.namespace}.svc:${PORT}`;
  const service: Obj = {
    apiVersion: 'v1', kind: 'Service',
    metadata: { name: `${o.name}-scheduler`, namespace: o.namespace, labels: labels(o) },
    spec: { clusterIP: 'None', publishNotReadyAddresses: true, selector: labels(o, 'scheduler'), ports: [{ name: 'tfjob-port', port: PORT, targetPort: PORT }] },
  };
  const job = (role: Role, count: number): Obj => {
    const env: Obj[] = [{ name: 'HYBRIDPS_ROLE', value: role }];
    if (role !== 'scheduler') {
      env.push({ name: 'HYBRIDPS_SCHEDULER', value: scheduler },
        { name: 'HYBRIDPS_INDEX', valueFrom: { fieldRef: { fieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']" } } });
    }
    return {
      apiVersion: 'batch/v1', kind: 'Job',
      metadata: { name: `${o.name}-${role}`, namespace: o.namespace, labels: labels(o, role) },
      spec: {
        completions: count, parallelism: count, completionMode: 'Indexed', backoffLimit: 6,
        // The same reading of exit codes as the TFJob's ExitCode policy: 1-127 end the job.
        podFailurePolicy: { rules: [{ action: 'FailJob', onExitCodes: { containerName: 'tensorflow', operator: 'In', values: [1, 2] } }] },
        template: podTemplate(o, role, env, { restartPolicy: 'Never', ...(role === 'scheduler' ? { subdomain: `${o.name}-scheduler` } : {}) }),
      },
    };
  };
  return [service, job('scheduler', 1), job('server', o.config.servers), job('worker', o.config.workers)];
}

/** The TF_CONFIG the training operator injects into one replica of a rendered TFJob (for tests and docs). */
export function operatorTfConfig(job: Obj, type: 'chief' | 'ps' | 'worker', index: number): string {
  const meta = job.metadata as { name: string; namespace: string };
  const specs = (job.spec as { tfReplicaSpecs: Record<string, { replicas: number }> }).tfReplicaSpecs;
  const cluster: Record<string, string[]> = {};
  for (const [rtype, spec] of Object.entries(specs)) {
    const t = rtype.toLowerCase();
    cluster[t] = Array.from({ length: spec.replicas }, (_, i) => `${meta.name}-${t}-${i}.${meta.namespace}.svc:${PORT}`);
  }
  return JSON.stringify({ cluster, task: { type, index }, environment: 'cloud' });
}
