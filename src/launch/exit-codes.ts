// What a role's exit code tells an orchestrator. Kubeflow's `restartPolicy: ExitCode` restarts a
// replica on codes 128-255 and fails the job on 1-127; a plain Job's `podFailurePolicy` can say
// the same with `onExitCodes`. So a failure a restart can cure (a peer not up yet, the scheduler
// gone) exits >= 128, and one it cannot (bad configuration, a bug, diverged training) below.
// The table is in docs/kubernetes.md; the manifests `hybridps kubernetes` writes rely on it.

export const EXIT = {
  /** The role finished its work (a worker trained to the end; a server or scheduler was asked to stop). */
  ok: 0,
  /** An error a restart will not cure (see the last line on stderr). */
  failed: 1,
  /** The configuration or the command line is wrong (the message names the field). */
  badConfig: 2,
  /** A peer it needs (the scheduler) did not resolve or accept connections within the startup wait: retryable. */
  peerUnreachable: 200,
} as const;

/** The configuration (flags, TF_CONFIG, the training config) is wrong: restarting will not help. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** A peer did not come up within the startup wait: a restart (later) may find it. */
export class PeerUnreachableError extends Error {
  override name = 'PeerUnreachableError';
  constructor(readonly url: string, readonly waitedMs: number, why: string) {
    super(`${url} was not reachable within ${Math.round(waitedMs / 1000)} s (${why}); ` +
      'is the scheduler running, and does its name resolve from here? (--startup-wait-s sets how long to wait)');
  }
}

export function exitCodeFor(e: unknown): number {
  if (e instanceof PeerUnreachableError) return EXIT.peerUnreachable;
  if (e instanceof ConfigError) return EXIT.badConfig;
  return EXIT.failed;
}
