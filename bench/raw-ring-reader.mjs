// The raw ring's receiving end in a worker thread (bench/raw-ring.ts, readerThread): it dials the
// left neighbour itself (a socket cannot move between threads) and reads with `onread` into one
// 1 MiB buffer, as the one-thread peer does, counting bytes in shared memory (counts[0]) and
// posting a message whenever the count reaches what the main thread is waiting for (counts[1]).
// It measures what a second thread per rank wins for the ring's traffic: the main thread then only
// writes. Plain JS: a worker thread does not inherit tsx's loader in Node 20.
import { parentPort, workerData } from 'node:worker_threads';
import { connect } from 'node:net';

const { leftPort, counts: sab } = workerData;
const counts = new BigInt64Array(sab);
let received = 0n;
let told = -1n;
const inbound = connect({
  host: '127.0.0.1', port: leftPort,
  onread: {
    buffer: new Uint8Array(1 << 20),
    callback: (n) => {
      received += BigInt(n);
      Atomics.store(counts, 0, received);
      const want = Atomics.load(counts, 1);
      if (received >= want && told !== want) { told = want; parentPort.postMessage(0); }
      return true;
    },
  },
});
inbound.setNoDelay(true);
inbound.once('connect', () => parentPort.postMessage('connected'));
inbound.once('error', (e) => { throw e; });
parentPort.on('message', (m) => { if (m === 'close') { inbound.destroy(); parentPort.close(); } });
