#!/usr/bin/env node
// `hybridps` command line: one subcommand per role plus the local launcher and tools.
import { Command, Option } from 'commander';
import { runScheduler, runServer } from './roles.ts';
import { runDemo } from './demo.ts';

const program = new Command();
program.name('hybridps').description('Parameter-server training for recommender models with WebGPU workers').showHelpAfterError();

const int = (v: string) => { const n = Number(v); if (!Number.isInteger(n)) throw new Error(`not an integer: ${v}`); return n; };
const secretOptions = (c: Command) => c
  .option('--secret-file <file>', 'file holding the cluster secret (or HYBRIDPS_SECRET / HYBRIDPS_SECRET_FILE)')
  .option('--host <host>', 'interface to listen on (default 127.0.0.1, or from TF_CONFIG)')
  .option('--port <port>', 'port to listen on (0: any free port)', int)
  .option('--heartbeat-ms <ms>', 'heartbeat interval', int)
  .option('--metrics-port <port>', 'serve Prometheus /metrics and JSON /status on this port (0: any)', int);

secretOptions(program.command('scheduler').description('run the scheduler (membership, cluster view, clocks, barriers)'))
  .option('--replicas <n>', 'replication factor R for every key range', int)
  .option('--vnodes <n>', 'virtual nodes per server on the hash ring', int)
  .option('--heartbeat-misses <n>', 'missed heartbeats before a member is declared dead', int)
  .action((o) => runScheduler(o));

secretOptions(program.command('server').description('run a parameter server'))
  .option('--scheduler <url>', 'scheduler address ws://HOST:PORT (or HYBRIDPS_SCHEDULER / TF_CONFIG)')
  .option('--node-id <id>', 'stable name of this server')
  .option('--max-frame-mb <mb>', 'refuse frames larger than this', int)
  .option('--optimizer-module <path...>', 'ESM module(s) exporting custom update functions')
  .option('--checkpoint-root <dir>', 'checkpoints may only be written/read inside this directory (default: cwd)')
  .action((o) => runServer(o));

program.command('run').description('run the role named by TF_CONFIG or HYBRIDPS_ROLE (for orchestrators)')
  .option('--secret-file <file>')
  .action(async (o) => {
    const { clusterEnvFromProcess } = await import('./cluster-env.ts');
    const env = clusterEnvFromProcess();
    if (env.role === 'scheduler') return runScheduler(o);
    if (env.role === 'server') return runServer(o);
    if (env.role === 'worker') {
      throw new Error('the worker role is a library call for now (PSClient in src/client/ps-client.ts); the GPU training worker is not wired to the command line yet');
    }
    throw new Error('no role: set TF_CONFIG (task.type chief|ps|worker) or HYBRIDPS_ROLE');
  });

program.command('launch').description('start a scheduler and servers on this machine (child processes) until Ctrl-C')
  .option('--servers <n>', 'parameter servers', int, 2)
  .option('--replicas <n>', 'replication factor R', int)
  .option('--heartbeat-ms <ms>', 'heartbeat interval', int)
  .option('--json', 'print the cluster addresses as one JSON line')
  .action(async (o) => {
    const { launchAndWait } = await import('./launch.ts');
    await launchAndWait({ servers: o.servers, replicas: o.replicas, heartbeatMs: o.heartbeatMs, json: !!o.json });
    process.exit(0);
  });

program.command('demo').description('push/pull demo on a local cluster (scheduler + servers as child processes)')
  .option('--servers <n>', 'parameter servers', int, 2)
  .option('--rows <n>', 'distinct rows to touch', int, 100_000)
  .option('--dim <n>', 'row width', int, 64)
  .option('--keys <n>', 'unique keys per request', int, 4096)
  .option('--rounds <n>', 'pull/push/clock rounds', int, 20)
  .option('--json', 'print one JSON summary as the last line')
  .action((o) => runDemo({ servers: o.servers, rows: o.rows, dim: o.dim, keysPerRequest: o.keys, rounds: o.rounds, json: !!o.json }));

void Option;
program.parseAsync().catch((e: Error) => {
  process.stderr.write(`hybridps: ${e.message}\n`);
  process.exit(1);
});
