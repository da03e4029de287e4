/**
 * Running the agent as a systemd service (systemd.service(5)) where systemd is PID 1, detected as
 * sd_booted(3) does. The unit keeps userspace WireGuard processes alive across agent restarts.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { SYSTEMD_RUN_DIR, SYSTEMD_UNIT_NAME, SYSTEMD_UNIT_PATH } from '../constants.js';
import { AgentError } from '../errors.js';
import { commandError, type Runner } from '../runner.js';

/** Whether systemd runs this host (the directory it creates at boot exists). */
export function systemdRunning(runDir = SYSTEMD_RUN_DIR): boolean {
  return existsSync(runDir);
}

/** The unit file text for an agent started as `argv` (the program and its leading arguments). Pure. */
export function unitFile(argv: readonly string[], stateDir: string): string {
  const q = (s: string) =>
    /^[A-Za-z0-9_./:=@+-]+$/.test(s) ? s : `"${s.replace(/["\\]/g, '\\$&')}"`;
  return [
    '[Unit]',
    'Description=wiremesh mesh agent',
    'Wants=network-online.target',
    'After=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${[...argv, 'daemon', '--state-dir', stateDir].map(q).join(' ')}`,
    'ExecReload=/bin/kill -HUP $MAINPID',
    'Restart=always',
    'RestartSec=2',
    // Only the agent is stopped on restart: its userspace WireGuard children keep the mesh up.
    'KillMode=process',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

/** Installs the unit and enables and (re)starts it. Throws AgentError when systemctl fails. */
export async function installService(
  runner: Runner,
  argv: readonly string[],
  stateDir: string,
): Promise<void> {
  writeFileSync(SYSTEMD_UNIT_PATH, unitFile(argv, stateDir), { mode: 0o644 });
  for (const args of [
    ['daemon-reload'],
    ['enable', SYSTEMD_UNIT_NAME],
    ['reload-or-restart', SYSTEMD_UNIT_NAME],
  ]) {
    const r = await runner.run('systemctl', args);
    if (r.code !== 0)
      throw new AgentError(
        'system',
        `systemctl ${args.join(' ')} failed (${commandError(r)}): see "journalctl -u ${SYSTEMD_UNIT_NAME}"`,
      );
  }
}
