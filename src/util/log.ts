// One line per notable event: `time level role event key=value ...`. Level from HYBRIDPS_LOG
// (debug|info|warn|error, default info); HYBRIDPS_LOG_JSON=1 prints JSON lines instead.
export type Level = 'debug' | 'info' | 'warn' | 'error';
const order: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

function threshold(): number {
  const l = (process.env.HYBRIDPS_LOG ?? 'info') as Level;
  return order[l] ?? order.info;
}

export interface Logger {
  debug(event: string, fields?: Record<string, unknown>): void;
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
}

export function createLogger(name: string): Logger {
  const emit = (level: Level, event: string, fields: Record<string, unknown> = {}) => {
    if (order[level] < threshold()) return;
    const time = new Date().toISOString();
    let line: string;
    if (process.env.HYBRIDPS_LOG_JSON === '1') {
      line = JSON.stringify({ time, level, name, event, ...fields });
    } else {
      const kv = Object.entries(fields).map(([k, v]) => `${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`);
      line = [time, level.toUpperCase().padEnd(5), name, event, ...kv].join(' ');
    }
    process.stderr.write(line + '\n');
  };
  return {
    debug: (e, f) => emit('debug', e, f),
    info: (e, f) => emit('info', e, f),
    warn: (e, f) => emit('warn', e, f),
    error: (e, f) => emit('error', e, f),
  };
}
