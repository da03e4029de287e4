/**
 * Logging of the userspace device and `wgts`, by LOG_LEVEL as wireguard-go reads it (main.go:
 * "verbose"/"debug", "error", "silent"; default "error") and in its line format
 * ("DEBUG: (wg0) 2006/01/02 15:04:05 message").
 */

/** How much to log: everything, errors (and the start-up report) only, or nothing. */
export type LogLevel = 'verbose' | 'error' | 'silent';

/** Where the device and daemon write their log lines. Messages never hold secrets. */
export interface Logger {
  /** Details for debugging (LOG_LEVEL=verbose or debug). */
  verbose(message: string): void;
  /** A start-up report (crypto chosen, socket path); shown unless silent. */
  info(message: string): void;
  /** Something failed. */
  error(message: string): void;
}

/** A Logger that drops everything. */
export const silentLogger: Logger = Object.freeze({
  verbose: () => undefined,
  info: () => undefined,
  error: () => undefined,
});

/**
 * LOG_LEVEL's value as wireguard-go reads it: "verbose" or "debug" -> verbose, "error", "silent";
 * anything else (or unset) -> error. Never throws.
 */
export function parseLogLevel(text: string | undefined): LogLevel {
  switch (text) {
    case 'verbose':
    case 'debug':
      return 'verbose';
    case 'silent':
      return 'silent';
    default:
      return 'error';
  }
}

/** Options of createLogger. */
export interface LoggerOptions {
  level: LogLevel;
  /** Put after the level tag, as wireguard-go's "(wg0) ". */
  prefix?: string;
  /** Receives verbose and info lines (newline included); default process.stdout. */
  out?: (line: string) => void;
  /** Receives error lines; default process.stderr. */
  err?: (line: string) => void;
  /** Wall clock for the timestamp; default Date.now. */
  clock?: () => number;
}

const pad2 = (n: number): string => String(n).padStart(2, '0');

/** Local time as Go's log.Ldate|log.Ltime prints it: 2006/01/02 15:04:05. */
function timestamp(ms: number): string {
  const d = new Date(ms);
  return (
    `${d.getFullYear()}/${pad2(d.getMonth() + 1)}/${pad2(d.getDate())} ` +
    `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`
  );
}

/**
 * A Logger writing "TAG: PREFIX DATE TIME message\n" lines: DEBUG and INFO to `out`, ERROR to
 * `err`, filtered by `level`. Throws TypeError for an unknown level.
 */
export function createLogger(options: LoggerOptions): Logger {
  const { level } = options;
  if (level !== 'verbose' && level !== 'error' && level !== 'silent') {
    throw new TypeError(`log level must be 'verbose', 'error' or 'silent', got ${String(level)}`);
  }
  const prefix = options.prefix ?? '';
  const out = options.out ?? ((line: string) => void process.stdout.write(line));
  const err = options.err ?? ((line: string) => void process.stderr.write(line));
  const clock = options.clock ?? Date.now;
  const line = (tag: string, message: string): string =>
    `${tag}: ${prefix}${timestamp(clock())} ${message}\n`;
  const off = (): void => undefined;
  return {
    verbose: level === 'verbose' ? (m) => out(line('DEBUG', m)) : off,
    info: level === 'silent' ? off : (m) => out(line('INFO', m)),
    error: level === 'silent' ? off : (m) => err(line('ERROR', m)),
  };
}
