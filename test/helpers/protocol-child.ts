// Child process for the child-protocol test, using only the child's end of the protocol: reports
// every fixture message, answers each checkpointAt with a checkpoint message of that step, and
// exits when its launcher goes away. MALFORMED=1: sends a malformed message first (raw).
import { tellLauncher, flushToLauncher, onLauncherMessage, onLauncherGone, hasLauncher } from '../../src/launch/child-protocol.ts';
import { CHILD_MESSAGES } from './protocol-fixtures.ts';

if (!hasLauncher()) { process.stderr.write('protocol-child: no launcher channel\n'); process.exit(2); }
if (process.env.MALFORMED === '1') process.send!({ kind: 'progress', progress: { rank: 0, step: 'seven' } });
onLauncherGone(() => { void flushToLauncher().then(() => process.exit(0)); });
onLauncherMessage((m) => tellLauncher({ kind: 'checkpoint', step: m.step, dir: 'received' }));
for (const m of CHILD_MESSAGES) tellLauncher(m);
