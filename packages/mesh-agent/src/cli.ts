#!/usr/bin/env node
/**
 * `wiremesh`: the mesh agent's command line (commander). Every failure ends with one line on
 * stderr saying what to do, and a non-zero exit code (constants.ts EXIT); no stack traces unless
 * WIREMESH_DEBUG=1.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { PROTOCOL_VERSION } from '@wiremesh/protocol';
import { EXIT, MAX_INTERFACE_NAME_LENGTH } from './constants.js';
import { CoordinatorError } from './control/coordinator-client.js';
import {
  checkinCommand,
  daemonCommand,
  joinCommand,
  leaveCommand,
  statusCommand,
  type CommandContext,
} from './cli/commands.js';
import { AgentError, errorMessage } from './errors.js';
import { createLogger, parseLogLevel } from './log.js';
import { defaultStateDir } from './cli/openwrt.js';
import { systemRunner } from './runner.js';
import { installServiceCommand } from './cli/service.js';
import { StateStore } from './state-store.js';
import { AGENT_SEMVER } from './version.js';

const MAX_PORT = 65535;

function port(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > MAX_PORT)
    throw new InvalidArgumentError(`must be a port number 1-${MAX_PORT}`);
  return Number(text);
}

/**
 * The context of a command. One-shot commands print progress (and log lines) on stdout, so that
 * on failure stderr holds exactly the one line that says what to do; the daemon logs to stderr.
 */
function context(stateDir: string, progressOnStdout = true): CommandContext {
  const level = parseLogLevel(process.env['WIREMESH_LOG_LEVEL']) ?? 'info';
  const write = progressOnStdout ? (line: string) => process.stdout.write(`${line}\n`) : undefined;
  const script = realpathSync(fileURLToPath(import.meta.url));
  return {
    store: new StateStore(stateDir),
    runner: systemRunner(),
    log: createLogger(level, '', write, process.env['WIREMESH_LOG_TIME'] === '1'),
    out: (line) => process.stdout.write(`${line}\n`),
    env: process.env,
    argv0: [process.execPath, script],
  };
}

const stateDirOption = () =>
  new Option('--state-dir <dir>', 'where keys and state live').default(defaultStateDir());

/** Builds the command tree (exported for tests). */
export function buildProgram(): Command {
  const program = new Command('wiremesh')
    .description('wiremesh mesh agent: join a WireGuard mesh and keep it current')
    .version(`wiremesh ${AGENT_SEMVER} (protocol ${PROTOCOL_VERSION})`)
    .showHelpAfterError('(run "wiremesh --help" for usage)')
    .exitOverride();

  program
    .command('join')
    .description('register this node in a network and bring the mesh up')
    .requiredOption('--server <url>', 'coordinator URL, e.g. http://coordinator:8080')
    .requiredOption('--network <name>', 'network to join')
    .option('--key <key>', 'enrollment key (wmk_...); without one the node waits for approval')
    .option(
      '--server-fingerprint <sha256>',
      "pin the coordinator's TLS certificate (self-signed): its SHA-256 as the coordinator prints it",
    )
    .option('--name <name>', 'node name (default: the host name)')
    .addOption(
      new Option(
        '--daemon <mode>',
        'on: run as a service (systemd) or in the foreground; off: one round, then cron',
      )
        .choices(['on', 'off'])
        .default('on'),
    )
    .addOption(
      new Option('--backend <kind>', 'WireGuard implementation')
        .choices(['auto', 'kernel', 'userspace'])
        .default('auto'),
    )
    .addOption(
      new Option(
        '--dns <mode>',
        "on: the mesh names resolve on this host (for the mesh domain only); off: the host's resolver configuration is left alone",
      )
        .choices(['on', 'off'])
        .default('on'),
    )
    .option('--port <n>', "WireGuard listen port (default: the network's)", port)
    .option(
      '--interface <name>',
      `interface name (default wm-<network>, at most ${MAX_INTERFACE_NAME_LENGTH} characters)`,
    )
    .addOption(stateDirOption())
    .action(
      async (o: {
        server: string;
        network: string;
        key?: string;
        serverFingerprint?: string;
        name?: string;
        daemon: 'on' | 'off';
        dns: 'on' | 'off';
        backend: 'auto' | 'kernel' | 'userspace';
        port?: number;
        interface?: string;
        stateDir: string;
      }) => {
        await joinCommand(context(o.stateDir), {
          server: o.server,
          network: o.network,
          daemon: o.daemon,
          dns: o.dns,
          backend: o.backend,
          ...(o.key !== undefined ? { key: o.key } : {}),
          ...(o.serverFingerprint !== undefined ? { serverFingerprint: o.serverFingerprint } : {}),
          ...(o.name !== undefined ? { name: o.name } : {}),
          ...(o.port !== undefined ? { port: o.port } : {}),
          ...(o.interface !== undefined ? { interface: o.interface } : {}),
        });
      },
    );

  program
    .command('daemon')
    .description(
      'run the agent: keep every joined network current (SIGHUP rescans the state directory)',
    )
    .addOption(stateDirOption())
    .action(async (o: { stateDir: string }) => {
      await daemonCommand(context(o.stateDir, false));
    });

  program
    .command('checkin')
    .description('one round for every (or one) network: report, apply a newer map (for cron)')
    .option('--network <name>', 'all, or one network', 'all')
    .addOption(stateDirOption())
    .action(async (o: { network: string; stateDir: string }) => {
      await checkinCommand(context(o.stateDir), o.network);
    });

  program
    .command('status')
    .description('interfaces, backends, addresses and peers of the joined networks')
    .option('--json', 'machine-readable output')
    .option('--network <name>', 'only this network')
    .addOption(stateDirOption())
    .action(async (o: { json?: boolean; network?: string; stateDir: string }) => {
      await statusCommand(context(o.stateDir), {
        json: o.json === true,
        ...(o.network !== undefined ? { network: o.network } : {}),
      });
    });

  program
    .command('install-service')
    .description('run the daemon as a service: a systemd unit, or a procd init script on OpenWrt')
    .addOption(
      new Option('--init <kind>', 'init system')
        .choices(['auto', 'systemd', 'procd'])
        .default('auto'),
    )
    .option('--print', 'print the unit or init script instead of installing it')
    .addOption(stateDirOption())
    .action(
      async (o: { init: 'auto' | 'systemd' | 'procd'; print?: boolean; stateDir: string }) => {
        await installServiceCommand(context(o.stateDir), { init: o.init, print: o.print === true });
      },
    );

  program
    .command('leave')
    .description(
      'deregister and remove the interface, routes and firewall rules (all networks unless --network)',
    )
    .option('--network <name>', 'only this network')
    .addOption(stateDirOption())
    .action(async (o: { network?: string; stateDir: string }) => {
      await leaveCommand(context(o.stateDir), o.network);
    });

  return program;
}

/** Runs the CLI with `argv` (process.argv form); resolves to the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  try {
    await buildProgram().parseAsync([...argv]);
    return EXIT.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (process.env['WIREMESH_DEBUG'] === '1')
      process.stderr.write(`${(e as Error)?.stack ?? String(e)}\n`);
    if (e instanceof AgentError) {
      process.stderr.write(`wiremesh: ${e.message}\n`);
      return e.exitCode;
    }
    if (e instanceof CoordinatorError) {
      process.stderr.write(`wiremesh: the coordinator refused: ${e.message} (${e.code})\n`);
      return EXIT.failure;
    }
    process.stderr.write(
      `wiremesh: unexpected error: ${errorMessage(e)} (run with WIREMESH_DEBUG=1 for details and report it)\n`,
    );
    return EXIT.failure;
  }
}

const invokedDirectly = (() => {
  try {
    return (
      process.argv[1] !== undefined &&
      realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))
    );
  } catch {
    return false;
  }
})();

if (invokedDirectly) {
  // Exit at once: idle keep-alive sockets of fetch must not hold a finished command open.
  void main(process.argv).then((code) => process.exit(code));
}
