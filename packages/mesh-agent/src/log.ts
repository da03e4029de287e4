/**
 * A small leveled logger writing one line per event to stderr (journald adds its own timestamps
 * under systemd). Callers pass messages that never hold secrets; keys and node secrets are never
 * formatted anywhere in the agent.
 */

/** Severity, lowest first. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** Where the agent's messages go. */
export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

/**
 * A logger that writes lines at or above `level` to `write` (default: stderr), each prefixed with
 * `prefix` when given, and with an ISO timestamp when `timestamps` (journald adds its own). Returns
 * a new Logger.
 */
export function createLogger(
  level: LogLevel = 'info',
  prefix = '',
  write: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
  timestamps = false,
): Logger {
  const at = (l: LogLevel) => (msg: string) => {
    if (RANK[l] < RANK[level]) return;
    const time = timestamps ? `${new Date().toISOString()} ` : '';
    write(`${time}${l === 'info' ? '' : `${l}: `}${prefix}${msg}`);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** A logger that drops everything (tests). */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** A logger that keeps lines in `lines` (tests). Returns the logger and the array it fills. */
export function memoryLogger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger('debug', '', (l) => lines.push(l)), lines };
}

/** Parses a level name; returns null for anything else. */
export function parseLogLevel(text: string | undefined): LogLevel | null {
  return text === 'debug' || text === 'info' || text === 'warn' || text === 'error' ? text : null;
}
