// The rendered Kubernetes objects as one YAML stream, with a header saying how they were made and
// what must exist before `kubectl apply` (the Secret and the claims). Kept apart from
// kubernetes.ts so the objects can be built and inspected without the YAML library.
import { stringify } from 'yaml';
import { renderKubernetes, type KubernetesOptions } from './kubernetes.ts';

export function kubernetesYaml(o: KubernetesOptions): string {
  const header = [
    `# hybridps ${o.kind === 'tfjob' ? 'TFJob (Kubeflow training operator v1)' : 'Indexed Jobs + headless Service (no operator)'}: ` +
      `${o.config.servers} servers, ${o.config.workers} workers, ${o.config.mode}, written by \`hybridps kubernetes\` (docs/kubernetes.md).`,
    `# Before applying: kubectl -n ${o.namespace} create secret generic ${o.secretName} --from-file=secret=./secret`,
    ...(o.tlsSecret ? [`#   and the TLS Secret ${o.tlsSecret} (tls.crt, tls.key, ca.crt; DNS:hybridps in its subjectAltName; docs/operations.md, "Encrypted links"):`,
      `#   kubectl -n ${o.namespace} create secret generic ${o.tlsSecret} --from-file=tls.crt=./tls.crt --from-file=tls.key=./tls.key --from-file=ca.crt=./ca.crt`] : []),
    `#   and the claims ${o.dataClaim} (holding ${o.config.data})${o.config.checkpointDir || o.config.resume ? ` and ${o.checkpointClaim} (ReadWriteMany)` : ''}.`,
  ].join('\n');
  return header + '\n' + renderKubernetes(o).map((obj) => '---\n' + stringify(obj, { lineWidth: 0 })).join('');
}
