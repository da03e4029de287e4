/**
 * The agent's user-facing failures: each carries one line that says what went wrong and what to
 * do, and the exit code the command ends with. Anything else that escapes is a bug.
 */
import { EXIT, type ExitCode } from './constants.js';

/** Why the agent stopped. */
export type AgentErrorCode =
  | 'usage'
  | 'not_root'
  | 'no_tun'
  | 'no_tool'
  | 'no_backend'
  | 'unreachable'
  | 'protocol'
  | 'enrollment'
  | 'rejected'
  | 'removed'
  | 'not_joined'
  | 'coordinator'
  | 'system';

const EXIT_OF: Record<AgentErrorCode, ExitCode> = {
  usage: EXIT.usage,
  not_root: EXIT.notRoot,
  no_tun: EXIT.noTun,
  no_tool: EXIT.failure,
  no_backend: EXIT.failure,
  unreachable: EXIT.unreachable,
  protocol: EXIT.failure,
  enrollment: EXIT.enrollment,
  rejected: EXIT.rejected,
  removed: EXIT.rejected,
  not_joined: EXIT.notJoined,
  coordinator: EXIT.failure,
  system: EXIT.failure,
};

/**
 * A failure the user can act on. `message` is one line (what happened; what to do) and never holds
 * a secret. `exitCode` follows from `code`.
 */
export class AgentError extends Error {
  readonly code: AgentErrorCode;
  readonly exitCode: ExitCode;
  constructor(code: AgentErrorCode, message: string) {
    super(message);
    this.name = 'AgentError';
    this.code = code;
    this.exitCode = EXIT_OF[code];
  }
}

/** The message of any thrown value, on one line. */
export function errorMessage(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/\s*\n\s*/g, '; ').trim();
}
