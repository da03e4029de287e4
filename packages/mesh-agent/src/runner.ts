/**
 * Running the host's tools (ip, wg, iptables, nft, systemctl): one small interface so the
 * dataplane can be driven by a recording fake in tests, and one implementation on child_process.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { COMMAND_TIMEOUT_MS } from './constants.js';

/** What a finished command left behind. */
export interface CommandResult {
  /** Exit status; -1 when the command could not be started or was killed. */
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs one command without a shell. Implementations never throw for a failing command. */
export interface Runner {
  run(cmd: string, args: readonly string[], input?: string): Promise<CommandResult>;
}

/** A Runner on child_process.spawn (no shell, so arguments are never interpreted). */
export function systemRunner(timeoutMs = COMMAND_TIMEOUT_MS): Runner {
  return {
    run(cmd, args, input) {
      return new Promise((resolve) => {
        let stdout = '';
        let stderr = '';
        let done = false;
        const finish = (r: CommandResult) => {
          if (!done) {
            done = true;
            resolve(r);
          }
        };
        const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: timeoutMs });
        child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
        child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        child.on('error', (e) => finish({ code: -1, stdout, stderr: stderr + e.message }));
        child.on('close', (code) => finish({ code: code ?? -1, stdout, stderr }));
        child.stdin.on('error', () => {});
        child.stdin.end(input ?? '');
      });
    },
  };
}

/** The first executable file called `cmd` on PATH, or null. An absolute path is checked as is. */
export function findExecutable(cmd: string, path = process.env['PATH'] ?? ''): string | null {
  const candidates = cmd.includes('/')
    ? [cmd]
    : path
        .split(delimiter)
        .filter(Boolean)
        .map((d) => join(d, cmd));
  for (const c of candidates) {
    try {
      accessSync(c, fsConstants.X_OK);
      return c;
    } catch {
      // not here
    }
  }
  return null;
}

/** One line for an error: the command's stderr (trimmed, first line) or its exit status. */
export function commandError(r: CommandResult): string {
  const line = r.stderr.trim().split('\n')[0] ?? '';
  return line !== '' ? line : `exit status ${r.code}`;
}
