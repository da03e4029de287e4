// The service files a host runs, checked with the tools that run them: the systemd units of the
// agent and the coordinator with systemd-analyze verify, OpenWrt's procd init script and the
// `--daemon off` crontab lines under busybox ash (a fake rc.common stands in for procd), and
// shellcheck on all the shell text. Nothing here touches the host's own init system.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { cronLines } from '../packages/mesh-agent/src/cli/openwrt.js';
import { AGENT_JS, buildAll, COORDINATOR_JS, tempDir } from './harness/agent-mesh.js';
import { pollUntil, spawnIn, stopProcess } from './harness/netns.js';

const DAEMON_START_TIMEOUT_MS = 20_000;

/** What OpenWrt's /etc/rc.common does for a USE_PROCD script, with procd's calls written to $RECORD. */
const FAKE_RC_COMMON = `# fake /etc/rc.common: sources the init script, runs the action, records procd calls
initscript=$1
action=$2
procd_open_instance() { echo open_instance >>"$RECORD"; }
procd_set_param() {
  key=$1
  shift
  echo "param $key" >>"$RECORD"
  for word in "$@"; do printf 'arg %s\\n' "$word" >>"$RECORD"; done
}
procd_close_instance() { echo close_instance >>"$RECORD"; }
procd_send_signal() { echo "signal $*" >>"$RECORD"; }
. "$initscript"
[ "$USE_PROCD" = 1 ] || exit 3
case $action in
  start) start_service ;;
  reload) reload_service ;;
  *) exit 4 ;;
esac
`;

/** Runs a tool; returns its status and output. */
function tool(cmd: string, args: readonly string[], env?: NodeJS.ProcessEnv) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...(env ? { env } : {}) });
  if (r.error !== undefined)
    throw new Error(`${cmd} is missing (${r.error.message}): run scripts/install.sh`);
  return { status: r.status, out: `${r.stdout}${r.stderr}`.trim() };
}

function cli(js: string, args: readonly string[]): string {
  return execFileSync(process.execPath, [js, ...args], { encoding: 'utf8' });
}

describe('service files', () => {
  buildAll();
  const dir = tempDir('wm-service');

  test('both systemd units pass systemd-analyze verify, which does catch a bad one', () => {
    const agent = join(dir, 'wiremesh.service');
    writeFileSync(agent, cli(AGENT_JS, ['install-service', '--init', 'systemd', '--print']));
    const coordinator = join(dir, 'wiremesh-coordinator.service');
    writeFileSync(
      coordinator,
      cli(COORDINATOR_JS, ['install-service', '--print', '--listen', '0.0.0.0:443']),
    );
    expect(readFileSync(coordinator, 'utf8')).toContain('AmbientCapabilities=CAP_NET_BIND_SERVICE');
    for (const unit of [agent, coordinator])
      expect(tool('systemd-analyze', ['verify', unit])).toEqual({ status: 0, out: '' });
    const bad = join(dir, 'bad.service');
    writeFileSync(bad, readFileSync(agent, 'utf8').replace('ProtectSystem=', 'ProtectSytem='));
    expect(tool('systemd-analyze', ['verify', bad]).out).toContain("Unknown key 'ProtectSytem'");
  });

  test('the procd script is shellcheck-clean and, under busybox ash, starts the daemon and reloads it', async () => {
    const stateDir = join(dir, 'state');
    const script = join(dir, 'wiremesh.init');
    writeFileSync(
      script,
      cli(AGENT_JS, ['install-service', '--init', 'procd', '--print', '--state-dir', stateDir]),
    );
    expect(tool('shellcheck', ['-s', 'sh', script])).toEqual({ status: 0, out: '' });
    const rc = join(dir, 'rc.common');
    writeFileSync(rc, FAKE_RC_COMMON);
    const record = join(dir, 'procd.record');
    const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', RECORD: record };
    expect(tool('busybox', ['ash', rc, script, 'start'], env).status).toBe(0);
    const lines = readFileSync(record, 'utf8').trim().split('\n');
    expect(lines[0]).toBe('open_instance');
    expect(lines.at(-1)).toBe('close_instance');
    const command = lines
      .slice(lines.indexOf('param command') + 1)
      .filter((l, i, all) => all.slice(0, i + 1).every((x) => x.startsWith('arg ')))
      .map((l) => l.slice('arg '.length));
    expect(command).toEqual([process.execPath, AGENT_JS, 'daemon', '--state-dir', stateDir]);
    expect(lines).toContain('param respawn');
    // procd runs the command as argv, no shell: so does this.
    const daemon = spawnIn(null, command);
    try {
      await pollUntil(
        'the daemon procd started',
        () => {
          if (!daemon.running) throw new Error(`daemon exited: ${daemon.output()}`);
          return daemon.output().includes('no network is joined; waiting');
        },
        DAEMON_START_TIMEOUT_MS,
      );
      // Idle, it stays up and rescans on SIGHUP (procd's reload).
      daemon.kill('SIGHUP');
      await pollUntil(
        'the rescan on SIGHUP',
        () => {
          if (!daemon.running) throw new Error(`daemon exited: ${daemon.output()}`);
          return daemon.output().split('no network is joined; waiting').length === 3;
        },
        DAEMON_START_TIMEOUT_MS,
      );
    } finally {
      await stopProcess(daemon);
    }
    writeFileSync(record, '');
    expect(tool('busybox', ['ash', rc, script, 'reload'], env).status).toBe(0);
    expect(readFileSync(record, 'utf8')).toBe('signal wiremesh\n');
  });

  test('the two crontab lines run under busybox ash, the second after sleep 15, quoted right', () => {
    const recorder = join(dir, 'recorder.mjs');
    const record = join(dir, 'cron.record');
    writeFileSync(
      recorder,
      `import { appendFileSync } from 'node:fs';\nappendFileSync(${JSON.stringify(record)}, JSON.stringify(process.argv.slice(2)) + '\\n');\n`,
    );
    const stateDir = join(dir, "odd state dir's");
    mkdirSync(stateDir);
    const lines = cronLines([process.execPath, recorder], stateDir);
    const commands = lines.map((l) => {
      expect(l.startsWith('* * * * * ')).toBe(true);
      return l.slice('* * * * * '.length);
    });
    const sh = join(dir, 'cron.sh');
    writeFileSync(sh, `#!/bin/sh\n${commands.join('\n')}\n`);
    expect(tool('shellcheck', ['-s', 'sh', sh])).toEqual({ status: 0, out: '' });
    // A shell function shadows busybox's sleep applet: the delay is recorded, not waited for.
    const sleepRecorder = `sleep() { echo "sleep $*" >>${JSON.stringify(record)}; }; `;
    for (const c of commands)
      expect(tool('busybox', ['ash', '-c', sleepRecorder + c]).status).toBe(0);
    const want = JSON.stringify(['checkin', '--state-dir', stateDir]);
    expect(readFileSync(record, 'utf8').trim().split('\n')).toEqual([want, 'sleep 15', want]);
    // The real command: checkin on a state directory with no network exits 8 (not joined).
    const real = cronLines([process.execPath, AGENT_JS], stateDir)[0].slice('* * * * * '.length);
    expect(tool('busybox', ['ash', '-c', real]).status).toBe(8);
  });
});
