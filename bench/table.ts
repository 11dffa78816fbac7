/** Prints rows of objects as an aligned text table. */
export function printTable(title: string, rows: Record<string, unknown>[]): void {
  if (rows.length === 0) return;
  const cols = Object.keys(rows[0]!);
  // A column a row does not have (bench ps: the TLS rows have no ps-lite baseline), or a value not
  // measured (null, NaN: bench step with --gpu-steps 0), reads '-'.
  const cell = (v: unknown) => (v === undefined || v === null || Number.isNaN(v) ? '-' : typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(3)) : String(v));
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  console.log(`\n${title}`);
  console.log(cols.map((c, i) => c.padStart(width[i]!)).join('  '));
  for (const r of rows) console.log(cols.map((c, i) => cell(r[c]).padStart(width[i]!)).join('  '));
}
