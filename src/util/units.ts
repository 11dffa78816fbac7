// Numbers for people: bytes in B/KiB/MiB/GiB, durations in ms/s/min, rates with thousands
// separators. One place, so the summary, the compare table and the report say the same thing.

const BYTE_UNITS: [number, string][] = [[2 ** 30, 'GiB'], [2 ** 20, 'MiB'], [2 ** 10, 'KiB']];

/** 1536 -> "1.5 KiB", 3.2e6 -> "3.05 MiB", 12 -> "12 B". */
export function fmtBytes(n: number): string {
  for (const [size, unit] of BYTE_UNITS) {
    const v = n / size;
    if (Math.abs(n) >= size) return `${v.toFixed(Math.abs(v) >= 99.95 ? 0 : Math.abs(v) >= 9.995 ? 1 : 2)} ${unit}`;
  }
  return `${n.toFixed(0)} B`;
}

/** Milliseconds -> "0.42 ms", "12.3 ms", "250 ms", "4.56 s", "2.5 min". */
export function fmtMs(ms: number): string {
  if (ms >= 120_000) return `${(ms / 60_000).toFixed(1)} min`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  return `${ms.toFixed(ms >= 99.95 ? 0 : ms >= 9.995 ? 1 : 2)} ms`; // decided on the rounded value: 99.9999 is "100 ms"
}

/** 12345.6 -> "12,346" (a count or a rate; the caller names the unit). */
export function fmtCount(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** 0.1234 -> "12.3%". */
export function fmtPercent(fraction: number, digits = 1): string {
  return `${(100 * fraction).toFixed(digits)}%`;
}
