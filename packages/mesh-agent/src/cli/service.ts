/**
 * `wiremesh install-service`: the agent's daemon as a service of this host's init system, a
 * systemd unit (systemd.ts) or OpenWrt's procd init script (openwrt.ts); `--print` shows the file.
 */
import { writeFileSync } from 'node:fs';
import type { CommandContext } from './commands.js';
import { requireRoot } from './commands.js';
import { AgentError } from '../errors.js';
import { isOpenWrt, PROCD_SCRIPT_PATH, procdScript } from './openwrt.js';
import { commandError } from '../runner.js';
import { installService, systemdRunning, unitFile } from './systemd.js';

/** Mode of the init script: procd runs it. */
const INIT_SCRIPT_MODE = 0o755;

/** Options of `wiremesh install-service`. */
export interface InstallServiceOptions {
  init: 'auto' | 'systemd' | 'procd';
  /** Print the unit or script instead of installing it. */
  print: boolean;
}

/** Which init system `auto` means here; throws AgentError when there is neither. */
function chooseInit(init: InstallServiceOptions['init']): 'systemd' | 'procd' {
  if (init !== 'auto') return init;
  if (systemdRunning()) return 'systemd';
  if (isOpenWrt()) return 'procd';
  throw new AgentError(
    'system',
    'neither systemd (no /run/systemd/system) nor OpenWrt\'s procd runs this host: start "wiremesh daemon" from its init system, or join with --daemon off and use cron',
  );
}

/** Installs (or prints) the service and starts it. Throws AgentError when the init system fails. */
export async function installServiceCommand(
  ctx: CommandContext,
  o: InstallServiceOptions,
): Promise<void> {
  const init = chooseInit(o.init);
  if (o.print) {
    const text =
      init === 'systemd'
        ? unitFile(ctx.argv0, ctx.store.dir)
        : procdScript(ctx.argv0, ctx.store.dir);
    return void process.stdout.write(text);
  }
  requireRoot();
  ctx.store.ensureDir();
  if (init === 'systemd') {
    await installService(ctx.runner, ctx.argv0, ctx.store.dir);
    ctx.out('installed and started wiremesh.service (journalctl -u wiremesh.service for its log)');
    return;
  }
  writeFileSync(PROCD_SCRIPT_PATH, procdScript(ctx.argv0, ctx.store.dir), {
    mode: INIT_SCRIPT_MODE,
  });
  for (const action of ['enable', 'restart']) {
    const r = await ctx.runner.run(PROCD_SCRIPT_PATH, [action]);
    if (r.code !== 0)
      throw new AgentError(
        'system',
        `${PROCD_SCRIPT_PATH} ${action} failed (${commandError(r)}): see "logread -e wiremesh"`,
      );
  }
  ctx.out(`installed and started ${PROCD_SCRIPT_PATH} (logread -e wiremesh for its log)`);
}
