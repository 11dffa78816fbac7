// Hosts of the test's own: one network namespace per host, each with an `eth0` on a bridge that
// lives in a switch namespace of its own, so nothing is added to this machine's own network
// namespace (no interface, no route) and every host reaches the others only through the bridge,
// never through 127.0.0.1. All of it is created by the test run (as root, with iproute2) and
// removed by `destroy()`, on process exit, and, for runs that were killed, by the next run
// (names carry the creating process's pid; those of dead pids are removed).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';

const PREFIX = 'hps';

function ip(args: string[], what: string): string {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.error) throw new Error(`${what}: cannot run 'ip' (${r.error.message}); install iproute2 (scripts/setup.sh does)`);
  if (r.status !== 0) {
    throw new Error(`${what}: ip ${args.join(' ')} failed: ${r.stderr.trim()}` +
      (/Operation not permitted|permission/i.test(r.stderr) ? ' (network namespaces need root: run the tests as root, as CI does)' : ''));
  }
  return r.stdout;
}

function namespaces(): string[] {
  try { return readdirSync('/run/netns'); } catch { return []; }
}

const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; } };

/** Namespaces left behind by test runs that died before cleaning up. */
function removeStale(): void {
  for (const ns of namespaces()) {
    const m = new RegExp(`^${PREFIX}(\\d+)-`).exec(ns);
    if (m && !alive(Number(m[1]))) spawnSync('ip', ['netns', 'del', ns]);
  }
}

export interface TestHost { name: string; ns: string; ip: string }

export class TestHosts {
  private destroyed = false;
  private constructor(readonly hosts: TestHost[], private readonly all: string[]) {}

  /** `names.length` hosts on one bridge, addresses 10.77.0.1, .2, ... in that order. */
  static create(names: string[]): TestHosts {
    removeStale();
    const tag = `${PREFIX}${process.pid}-`;
    const sw = `${tag}sw`;
    const created: string[] = [];
    const hosts: TestHost[] = [];
    const cleanup = () => { for (const ns of created) spawnSync('ip', ['netns', 'del', ns]); };
    try {
      ip(['netns', 'add', sw], 'the switch namespace');
      created.push(sw);
      ip(['-n', sw, 'link', 'add', 'br0', 'type', 'bridge'], 'the bridge');
      ip(['-n', sw, 'link', 'set', 'br0', 'up'], 'the bridge');
      names.forEach((name, i) => {
        const ns = `${tag}${name}`;
        ip(['netns', 'add', ns], `host ${name}`);
        created.push(ns);
        // The veth pair is made inside the switch namespace, its far end moved straight into the host's.
        ip(['-n', sw, 'link', 'add', `p${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns], `host ${name}'s link`);
        ip(['-n', sw, 'link', 'set', `p${i}`, 'master', 'br0', 'up'], `host ${name}'s link`);
        const addr = `10.77.0.${i + 1}`;
        ip(['-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0'], `host ${name}'s address`);
        ip(['-n', ns, 'link', 'set', 'eth0', 'up'], `host ${name}'s link`);
        ip(['-n', ns, 'link', 'set', 'lo', 'up'], `host ${name}'s loopback`);
        hosts.push({ name, ns, ip: addr });
      });
    } catch (e) {
      cleanup();
      throw e;
    }
    const h = new TestHosts(hosts, created);
    process.on('exit', () => h.destroy());
    return h;
  }

  host(name: string): TestHost {
    const h = this.hosts.find((x) => x.name === name);
    if (!h) throw new Error(`no test host ${name}`);
    return h;
  }

  /** The command prefix that runs a program on `name`. */
  exec(name: string): string[] {
    return ['ip', 'netns', 'exec', this.host(name).ns];
  }

  /** Gives host `name` one more address on its link (a proxy listening for several hosts). */
  addAddress(name: string, addr: string): void {
    ip(['-n', this.host(name).ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0'], `host ${name}'s address ${addr}`);
  }

  /** Cuts (or restores) `name`'s only link: its eth0 goes down, so it neither sends nor receives. */
  setLink(name: string, up: boolean): void {
    ip(['-n', this.host(name).ns, 'link', 'set', 'eth0', up ? 'up' : 'down'], `host ${name}'s link`);
  }

  /**
   * Cuts (or heals) the path between hosts `a` and `b` only: a blackhole route to the other's
   * address on each side (iproute2 alone; no iptables or nft needed), so packets between the two
   * vanish as on a broken link while both still reach every other host. Connections between them
   * stay open and their packets are retransmitted once the path heals, as after a real partition.
   */
  setPath(a: string, b: string, up: boolean): void {
    for (const [from, to] of [[a, b], [b, a]] as const) {
      ip(['-n', this.host(from).ns, 'route', up ? 'del' : 'add', 'blackhole', `${this.host(to).ip}/32`], `the path from ${from} to ${to}`);
    }
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const ns of this.all) spawnSync('ip', ['netns', 'del', ns]);
  }
}
