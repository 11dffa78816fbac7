#!/usr/bin/env node
// `hybridps` command line: one subcommand per role plus the local launcher and tools. Parses the
// arguments and dispatches; the roles and launching live in src/launch/, which runs them.
import { Command, Option } from 'commander';
import { runScheduler, runServer, runWorker, orchestratorEnv } from '../launch/roles.ts';
import { runDemo } from '../launch/demo.ts';

const program = new Command();
program.name('hybridps').description('Parameter-server training for recommender models with WebGPU workers').showHelpAfterError();

const num = (v: string) => { const n = Number(v); if (!Number.isFinite(n)) throw new Error(`not a number: ${v}`); return n; };
const int = (v: string) => { const n = Number(v); if (!Number.isInteger(n)) throw new Error(`not an integer: ${v}`); return n; };
const secretOptions = (c: Command) => tlsOptions(c)
  .option('--secret-file <file>', 'file holding the cluster secret (or HYBRIDPS_SECRET / HYBRIDPS_SECRET_FILE)')
  .option('--host <host>', 'interface to listen on (default 127.0.0.1, or from TF_CONFIG)')
  .option('--port <port>', 'port to listen on (0: any free port)', int)
  .option('--advertise <host:port>', 'servers and workers: the address peers reach this process at, announced instead of the one it listens on (a proxy or NAT in between; or HYBRIDPS_ADVERTISE)')
  .option('--heartbeat-ms <ms>', 'heartbeat interval', int)
  .option('--metrics-port <port>', 'serve Prometheus /metrics and JSON /status on this port (0: any)', int)
  .option('--startup-wait-s <s>', 'servers and workers: wait this long for the scheduler to resolve and listen, then exit 200 (default 300, or HYBRIDPS_STARTUP_WAIT_S)', int);

// Mutual TLS on every link (docs/operations.md, "Encrypted links"); without them links are plain.
const tlsOptions = (c: Command) => c
  .option('--tls-cert <file>', 'this node\'s TLS certificate, PEM (or HYBRIDPS_TLS_CERT); with --tls-key and --tls-ca every link is mutual TLS')
  .option('--tls-key <file>', 'its private key, PEM (or HYBRIDPS_TLS_KEY)')
  .option('--tls-ca <file>', 'the cluster CA that signs every peer\'s certificate, PEM (or HYBRIDPS_TLS_CA)')
  .option('--tls-name <name>', 'the cluster name every certificate carries in its subjectAltName (default hybridps, or HYBRIDPS_TLS_NAME)');

// Bounds on what one peer's link may cost (docs/wire.md, "Bounds").
const linkOptions = (c: Command) => c
  .option('--max-frame-mb <mb>', 'refuse frames larger than this (default: server 64, scheduler 1)', int)
  .option('--pre-auth-max-bytes <n>', 'largest frame before the hello is verified (default 4096)', int)
  .option('--max-unauthenticated <n>', 'connections waiting to authenticate; more are refused (default 64)', int)
  .option('--hello-timeout-ms <ms>', 'close a connection not authenticated this long after it opened (default 5000)', int)
  .option('--max-in-flight <n>', 'frames a connection has in hand before its socket is not read (default 256)', int)
  .option('--max-in-flight-mb <mb>', 'bytes of frames a connection has in hand (default 64)', int)
  .option('--send-high-water-mb <mb>', 'replies wait while a socket has this much queued (default 32)', int);

secretOptions(linkOptions(program.command('scheduler')).description('run the scheduler (membership, cluster view, clocks, barriers)'))
  .option('--replicas <n>', 'replication factor R for every key range', int)
  .option('--vnodes <n>', 'virtual nodes per server on the hash ring', int)
  .option('--heartbeat-misses <n>', 'missed heartbeats before a member is declared dead', int)
  // Bounds on the barrier names peers can make the scheduler keep (docs/wire.md, "Bounds").
  .option('--max-barrier-names <n>', 'released barrier names remembered (their generations); older ones are forgotten (default 4096)', int)
  .option('--max-barriers-per-worker <n>', 'barriers one worker may wait in at once; another is refused (default 64)', int)
  .option('--job-workers <n>', 'exit (0) once this many workers have joined and all have gone: the job\'s end, for a TFJob chief or a Job', int)
  .action((o) => runScheduler(o));

secretOptions(linkOptions(program.command('server')).description('run a parameter server'))
  .option('--scheduler <url>', 'scheduler address ws://HOST:PORT (or HYBRIDPS_SCHEDULER / TF_CONFIG)')
  .option('--node-id <id>', 'stable name of this server')
  .option('--optimizer-module <path...>', 'ESM module(s) exporting custom update functions')
  .option('--checkpoint-root <dir>', 'checkpoints may only be written/read inside this directory (default: cwd)')
  .action((o) => runServer(o));

secretOptions(linkOptions(program.command('run'))).description('run the role named by TF_CONFIG or HYBRIDPS_ROLE (for orchestrators: see docs/kubernetes.md)')
  .option('--config <file>', 'worker: training configuration JSON (or HYBRIDPS_TRAIN_CONFIG)')
  .option('--job-workers <n>', 'scheduler: exit (0) once this many workers have joined and all have gone', int)
  .option('--replicas <n>', 'scheduler: replication factor R for every key range', int)
  .option('--checkpoint-root <dir>', 'server: checkpoints may only be written/read inside this directory (default: cwd)')
  .action(async (o) => {
    const { ConfigError } = await import('../launch/exit-codes.ts');
    const role = orchestratorEnv().role;
    if (role === 'scheduler') return runScheduler(o);
    if (role === 'server') return runServer(o);
    if (role === 'worker') return runWorker(o);
    throw new ConfigError('no role: set TF_CONFIG (task.type chief|ps|worker) or HYBRIDPS_ROLE');
  });

const trainOptions = (c: Command) => c
  .option('--servers <n>', 'parameter servers (default 2)', int)
  .option('--workers <n>', 'GPU workers (default 2)', int)
  .option('--replicas <n>', 'replication factor R', int)
  .option('--mode <mode>', 'hybrid (dense part by ring-allreduce) or pure-ps (dense part on the servers)')
  .option('--consistency <c>', 'bsp, ssp:N or asp (default bsp)')
  .option('--batch <n>', 'samples per worker per step (default 256)', int)
  .option('--steps <n>', 'steps to run (default: --epochs passes over the data)', int)
  .option('--epochs <n>', 'passes over the training data when --steps is not given (default 1)', int)
  .option('--lr <lr>', 'learning rate: 0.05, or per part emb=0.05,dense=0.01')
  .option('--optimizer <opt>', 'adagrad, or per part emb=adagrad,dense=sgd (emb: sgd|adagrad|adam|ftrl; dense: sgd|adagrad|adam)')
  .option('--data <files>', 'Criteo-layout data: a file, a directory, a glob (\'day_*.gz\'), or a comma list; repeatable; plain, gzip or BGZF (default: synthetic data from gen-data, cached in runs/data)', (v: string, prev?: string) => (prev ? `${prev},${v}` : v))
  .option('--samples <n>', 'samples of the default synthetic data', int)
  .option('--rows-per-table <n>', 'rows per embedding table (categorical ids are taken mod this)', int)
  .option('--eval-every <steps>', 'evaluate on held-out data every this many steps (default: at the end only; compare: about 10 times over the run)', int)
  .option('--eval-samples <n>', 'held-out samples for the periodic evaluations (the final one uses all)', int)
  .option('--checkpoint-dir <dir>', 'write checkpoints here (step-N/ directories and a latest file)')
  .option('--checkpoint-every <steps>', 'checkpoint every this many steps (and at the end)', int)
  .option('--resume <dir>', 'continue from a checkpoint (a step-N directory or a checkpoint root)')
  .option('--partial-dense', 'with --resume: dense parameters missing from dense.safetensors start fresh (listed in the log) instead of refusing')
  .option('--preset <name>', 'one of the model\'s presets (DLRM: small, CPU-friendly, or gpu, the DLRM benchmark shape)')
  .option('--model <json>', 'overrides of the model\'s configuration as JSON, e.g. {"dim":8}')
  .option('--seed <n>', 'initialisation seed (default 1)', int)
  .option('--wire-rows <format>', 'row values between workers and servers: f32 (default), f16 (also the dense allreduce) or bf16 (2 bytes a value; docs/wire.md)')
  .option('--f16', 'the same as --wire-rows f16: rows and the dense allreduce as fp16 on the wire')
  .option('--no-pipeline', 'a serial worker step (default: the next batch is prepared, and pulled where consistency allows, while the GPU computes)')
  .option('--cache-rows <n>', 'worker-side row cache: rows held per SSP/ASP table (default 0: off; 16384 is a first size to try where the network, not the worker CPU, is the limit; BSP is never cached; docs/training.md)', int)
  .option('--hot-rows <n>', 'BSP, hybrid mode: the n most frequent rows per table (or a fraction below 1 of its rows) held on every worker, their gradients in the dense allreduce (default 0: off)', num)
  .option('--cache-refresh <clocks>', 'ASP: clocks a cached row is served after it was read (default 2)', int)
  .option('--bad-lines <policy>', 'skip (default; counted and reported) or fatal')
  .option('--data-split <how>', 'bytes (default: each worker reads and parses only its byte range of the file) or stream (every worker reads the whole file; batches independent of the worker count)')
  .option('--json', 'print one JSON summary as the last line');

trainOptions(program.command('launch').argument('[sample]', 'a sample directory to train (e.g. samples/dlrm); without one, just a cluster')
  .description('train a sample on a local cluster (scheduler, servers and GPU workers as child processes); without a sample, start a scheduler and servers until Ctrl-C'))
  .option('--heartbeat-ms <ms>', 'heartbeat interval', int)
  .option('--keep-going', 'a worker (other than worker-0) dying does not stop the run: the others continue')
  .option('--tls', 'mutual TLS on every link, with a throwaway CA and per-role certificates made for this run (needs the openssl command)')
  .action(async (sample: string | undefined, o) => {
    if (!sample) {
      const { clusterCommand } = await import('../launch/commands.ts');
      await clusterCommand({ servers: o.servers ?? 2, replicas: o.replicas, heartbeatMs: o.heartbeatMs, json: !!o.json, tls: !!o.tls });
      process.exit(0);
    }
    const { readSample, trainJobFromFlags } = await import('./train-flags.ts');
    const job = await trainJobFromFlags(o, readSample(sample));
    const { trainCommand } = await import('../launch/commands.ts');
    await trainCommand(job, { json: !!o.json, keepGoing: !!o.keepGoing, tls: !!o.tls });
    process.exit(0);
  });

trainOptions(program.command('compare').argument('[sample]', 'sample directory', 'samples/dlrm')
  .description('train the sample in hybrid and in pure-PS mode on the same data and seed; write a report (terminal table + HTML plots)'))
  .option('--report <file>', 'HTML report path (default runs/compare-<time>.html)')
  .action(async (sample: string, o) => {
    const { readSample, trainJobFromFlags } = await import('./train-flags.ts');
    const s = readSample(sample);
    if (o.mode) throw new Error('compare runs both modes; leave out --mode');
    const jobs = await Promise.all((['hybrid', 'pure-ps'] as const).map((mode) => trainJobFromFlags({ ...o, mode }, s)));
    const { compareCommand } = await import('../launch/commands.ts');
    await compareCommand(jobs, { json: !!o.json, report: o.report });
    process.exit(0);
  });

secretOptions(program.command('worker').description('run one training worker (launch starts these; for orchestrators: TF_CONFIG task type worker)'))
  .option('--scheduler <url>', 'scheduler address ws://HOST:PORT (or HYBRIDPS_SCHEDULER / TF_CONFIG)')
  .option('--node-id <id>', 'stable name of this worker')
  .option('--config <file>', 'training configuration JSON (or HYBRIDPS_TRAIN_CONFIG)')
  .action((o) => runWorker(o));

trainOptions(program.command('kubernetes').argument('[sample]', 'sample directory', 'samples/dlrm')
  .description('write Kubernetes manifests for a training job: a TFJob (Kubeflow training operator) or plain Jobs and a Service (docs/kubernetes.md)'))
  .option('--kind <kind>', 'tfjob (default) or plain (Indexed Jobs + a headless Service, no operator)', 'tfjob')
  .option('--name <name>', 'job name, the prefix of every object', 'hybridps')
  .option('--namespace <ns>', 'namespace', 'default')
  .option('--image <image>', 'container image with hybridps and the Vulkan loader (docs/kubernetes.md, "The image")')
  .option('--gpus-per-worker <n>', 'nvidia.com/gpu per worker (0: no GPU request)', int, 1)
  .option('--secret-name <name>', 'Secret holding the cluster secret under the key "secret"', 'hybridps-secret')
  .option('--tls-secret <name>', 'Secret with tls.crt, tls.key and ca.crt (e.g. cert-manager\'s): mutual TLS on every link (default: plain links)')
  .option('--data-claim <name>', 'PersistentVolumeClaim with the data, mounted at /data on workers', 'hybridps-data')
  .option('--checkpoint-claim <name>', 'ReadWriteMany claim mounted at /checkpoints (when the run checkpoints)', 'hybridps-checkpoints')
  .option('--server-memory <q>', 'memory each server requests', '8Gi')
  .option('--out <file>', 'write the YAML here (default: standard output)')
  .action(async (sample: string, o) => {
    const { readSample, trainJobFromFlags } = await import('./train-flags.ts');
    const { ConfigError } = await import('../launch/exit-codes.ts');
    if (!o.data) throw new ConfigError('--data is required: the data file\'s path inside the pods, under /data/ (e.g. /data/train.tsv on the claim --data-claim)');
    if (o.kind !== 'tfjob' && o.kind !== 'plain') throw new ConfigError(`--kind must be tfjob or plain, got ${o.kind}`);
    const job = await trainJobFromFlags({ ...o, data: undefined }, readSample(sample)); // the data lives in the pods, not here
    const { kubernetesYaml } = await import('../launch/kubernetes-yaml.ts');
    const text = kubernetesYaml({
      kind: o.kind, name: o.name, namespace: o.namespace, image: o.image, config: { ...job.config, data: o.data },
      gpusPerWorker: o.gpusPerWorker, secretName: o.secretName, tlsSecret: o.tlsSecret, dataClaim: o.dataClaim, checkpointClaim: o.checkpointClaim, serverMemory: o.serverMemory,
    });
    if (o.out) { (await import('node:fs')).writeFileSync(o.out, text); process.stderr.write(`wrote ${o.out}\n`); } else process.stdout.write(text);
  });

program.command('top').description('a live view of a running job: per server requests/s, rows/s, waiting pulls, p99 pull/push time, and a sizing line')
  .option('--scheduler <url>', 'scheduler address ws://HOST:PORT (or HYBRIDPS_SCHEDULER / TF_CONFIG)')
  .option('--secret-file <file>', 'file holding the cluster secret (or HYBRIDPS_SECRET / HYBRIDPS_SECRET_FILE)')
  .option('--tls-cert <file>', 'TLS certificate, when the cluster\'s links are TLS (or HYBRIDPS_TLS_CERT)')
  .option('--tls-key <file>', 'its private key (or HYBRIDPS_TLS_KEY)')
  .option('--tls-ca <file>', 'the cluster CA (or HYBRIDPS_TLS_CA)')
  .option('--interval-s <s>', 'seconds between polls', Number, 2)
  .option('--once', 'one interval, then exit')
  .option('--json', 'one JSON object per poll instead of the table')
  .action(async (o) => {
    const { ConfigError } = await import('../launch/exit-codes.ts');
    const schedulerUrl = o.scheduler ?? orchestratorEnv().schedulerUrl;
    if (!schedulerUrl) throw new ConfigError('top needs the scheduler: --scheduler ws://HOST:PORT, HYBRIDPS_SCHEDULER or TF_CONFIG');
    if (!(o.intervalS > 0)) throw new ConfigError(`--interval-s must be a number of seconds > 0, got ${o.intervalS}`);
    const { loadSecret, loadTls } = await import('../transport/index.ts');
    const { runTop } = await import('../launch/top.ts');
    await runTop({ schedulerUrl, secret: loadSecret(o), tls: loadTls(o), intervalS: o.intervalS, once: !!o.once, json: !!o.json });
    process.exit(0);
  });

program.command('gen-data').argument('[sample]', 'a sample directory: its model\'s rows per table and its synthetic set\'s size and seed are the defaults')
  .description('write a synthetic Criteo-layout file from a planted DLRM-like model and print its AUC')
  .requiredOption('--out <file>', 'output file')
  .option('--samples <n>', 'lines to write (default 200000)', int)
  .option('--seed <n>', 'random seed (default 7)', int)
  .option('--rows-per-table <n>', 'distinct ids per categorical feature (default 1000)', int)
  .option('--gzip', 'gzip the output')
  .option('--json', 'print one JSON summary as the last line')
  .action(async (sample: string | undefined, o) => {
    const { readSample, sampleDataDefaults } = await import('./train-flags.ts');
    const d = sample ? await sampleDataDefaults(readSample(sample)) : { samples: 200_000, seed: 7, rowsPerTable: 1000 };
    const { genDataCommand } = await import('../launch/gen-data.ts');
    await genDataCommand({ out: o.out, samples: o.samples ?? d.samples, seed: o.seed ?? d.seed, rowsPerTable: o.rowsPerTable ?? d.rowsPerTable, gzip: !!o.gzip, json: !!o.json });
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
program.parseAsync().catch(async (e: Error) => {
  process.stderr.write(`hybridps: ${e.message}\n`);
  const { exitCodeFor } = await import('../launch/exit-codes.ts');
  process.exit(exitCodeFor(e));
});
