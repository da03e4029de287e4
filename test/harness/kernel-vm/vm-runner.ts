// A mesh-agent Runner whose commands run inside the kernel VM: the agent's dataplane stays in this
// Node process and only its `ip`/`wg` invocations cross the control channel, so the code under test
// is exactly what runs on a host with kernel WireGuard.
import type { CommandResult, Runner } from '@wiremesh/mesh-agent';
import type { KernelVm } from './kernel-vm.js';

/** Guest-side bound on one command, like the agent's own COMMAND_TIMEOUT_MS. */
const DEFAULT_TIMEOUT_MS = 15_000;
/** Words a POSIX shell passes through unchanged; the command name must stay unquoted so that the
 * guest's `ip` shell function (iproute2 instead of busybox's applet) is found. */
const SHELL_SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

function shQuote(word: string): string {
  return SHELL_SAFE.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

function b64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

/**
 * A Runner executing `cmd args` in the guest with `input` on stdin. stdout and stderr come back
 * separately (base64 on two lines, so nothing a command prints can be mistaken for the framing).
 * Never rejects: a dead or silent VM gives code -1 with the reason in stderr.
 */
export function vmRunner(vm: KernelVm, timeoutMs = DEFAULT_TIMEOUT_MS): Runner {
  return {
    async run(cmd, args, input): Promise<CommandResult> {
      if (!SHELL_SAFE.test(cmd)) throw new TypeError(`vmRunner: unsafe command name ${cmd}`);
      const line = [cmd, ...args.map(shQuote)].join(' ');
      const stdin =
        input === undefined || input === ''
          ? ': >/tmp/wm-run-in'
          : `echo '${b64(input)}' | base64 -d >/tmp/wm-run-in`;
      const script = [
        stdin,
        `${line} </tmp/wm-run-in >/tmp/wm-run-out 2>/tmp/wm-run-err`,
        'rc=$?',
        "base64 /tmp/wm-run-out | tr -d '\\n'; echo",
        "base64 /tmp/wm-run-err | tr -d '\\n'; echo",
        'rm -f /tmp/wm-run-in /tmp/wm-run-out /tmp/wm-run-err',
        'exit $rc',
      ].join('\n');
      try {
        const r = await vm.exec(script, timeoutMs);
        const [out = '', err = ''] = r.output.split('\n');
        const decode = (s: string) => Buffer.from(s, 'base64').toString('utf8');
        return { code: r.status, stdout: decode(out), stderr: decode(err) };
      } catch (e) {
        return { code: -1, stdout: '', stderr: (e as Error).message };
      }
    },
  };
}

/**
 * Writes `text` to `path` in the guest with mode 0600 (e.g. a private key for `wg set
 * private-key`); the bytes travel base64 and are never logged. Rejects when the guest fails.
 */
export async function vmWriteSecret(vm: KernelVm, path: string, text: string): Promise<void> {
  const dir = path.replace(/\/[^/]*$/, '') || '/';
  await vm.run(
    `umask 077; mkdir -p ${shQuote(dir)} && echo '${b64(text)}' | base64 -d >${shQuote(path)}`,
  );
}
