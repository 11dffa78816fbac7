// Child process for the child-protocol test, using only the child's end of the protocol: reports
// every fixture message, answers each checkpointAt with a checkpoint message of that step, and
// exits when its launcher goes away. MALFORMED=1: sends a malformed message first (raw).
// LATE=1: only waits, subscribing to the launcher's going away after a pause (it may be gone).
import { tellLauncher, flushToLauncher, onLauncherMessage, onLauncherGone, hasLauncher } from '../../src/launch/child-protocol.ts';
import { CHILD_MESSAGES } from './protocol-fixtures.ts';

if (process.env.LATE === '1') {
  setTimeout(() => onLauncherGone(() => process.exit(0)), 500);
  setTimeout(() => process.exit(3), 20_000); // never told: fail the test, leave no process behind
} else {
  if (!hasLauncher()) { process.stderr.write('protocol-child: no launcher channel\n'); process.exit(2); }
  if (process.env.MALFORMED === '1') process.send!({ kind: 'progress', progress: { rank: 0, step: 'seven' } });
  onLauncherGone(() => { void flushToLauncher().then(() => process.exit(0)); });
  onLauncherMessage((m) => tellLauncher({ kind: 'checkpoint', step: m.step, dir: 'received' }));
  for (const m of CHILD_MESSAGES) tellLauncher(m);
}
