// A Debian kernel with its WireGuard module, booted in qemu (TCG) from a busybox initramfs, wired to
// a fresh network namespace by a tap device, and driven over a serial control channel (init.sh).
// The peer under test runs in that namespace; see kernel-interop.test.ts.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  check,
  createNamespace,
  deleteNamespace,
  isStaleName,
  spawnChild,
  stopChild,
} from '../netns.js';
import { parseDump, type WgDump } from '../wg-dump.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '../../..');
/** Host-side timeout added to each command's own, for a slow emulated guest to answer. */
const EXEC_SLACK_MS = 10_000;
/** Times a command's frame is sent again after the guest reported it garbled (@@X) before failing. */
const FRAME_RESENDS = 3;
/** Exit statuses of a guest command its timeout killed (busybox timeout sends SIGTERM: 143). */
const TIMED_OUT_STATUSES = new Set([124, 143]);
/** Added to a guest ping's own bound (sending, then waiting for replies) for it to exit. */
const PING_EXIT_MARGIN_SEC = 2;
const QEMU_STOP_GRACE_MS = 3_000;
/** The VM's namespace, and the work dir named after it, are `wmk-<owner pid>-<hex>`. */
const NS_TAG = 'wmk';
const DEFAULT_EXEC_TIMEOUT_MS = 20_000;
const PREPARE_TIMEOUT_MS = 600_000;
const BUILD_INITRAMFS_TIMEOUT_MS = 60_000;
const CONSOLE_TAIL_LINES = 40;
const STDERR_KEEP_CHARS = 4096;

/** Where the kernel prepare.sh cached. */
export interface KernelImage {
  release: string;
  image: string;
  modulesDir: string;
}

/** Options of startKernelVm; every field has a default. */
export interface KernelVmOptions {
  /** Guest eth0 IPv4 with prefix. Default 10.201.0.2/24. */
  guestAddress4?: string;
  /** tap0 (namespace side) IPv4 with prefix. Default 10.201.0.1/24. */
  hostAddress4?: string;
  /** Guest eth0 IPv6 with prefix. Default fd77:201::2/64. */
  guestAddress6?: string;
  /** tap0 IPv6 with prefix. Default fd77:201::1/64. */
  hostAddress6?: string;
  /** WireGuard interface the guest creates at boot; null for none. Default wg0. */
  wgInterface?: string | null;
  /** Bound on boot, from spawning qemu to the control channel's READY. Default 90 s. */
  bootTimeoutMs?: number;
  /** Guest RAM. Default 256. */
  memoryMb?: number;
  /** More host programs (paths or names) to put in the guest's /bin with their libraries. */
  extraBinaries?: string[];
  /** Print `wg show all dump` on the console this often (seconds); off by default. */
  dumpIntervalSec?: number;
}

/** Output of a guest command. */
export interface ExecResult {
  /** stdout and stderr, interleaved as written. */
  output: string;
  /** Exit status; 124 or 143 when the guest's own timeout killed it. */
  status: number;
}

/** Counts parsed from the guest's (busybox) ping. */
export interface PingResult {
  transmitted: number;
  received: number;
  /** The whole ping output, for failure messages. */
  output: string;
}

/** Options of KernelVm.ping. */
export interface PingOptions {
  count?: number;
  intervalSec?: number;
  /** Stop sending after this many seconds, and wait at most this long for a reply after the last. */
  deadlineSec?: number;
}

/** A running VM. Owns its qemu process and namespace until stop(). */
export interface KernelVm {
  /** Namespace holding tap0, the VM's link; run the peer under test here. */
  readonly netns: string;
  readonly kernelRelease: string;
  /** Milliseconds from spawning qemu to the guest's READY on the control channel. */
  readonly bootMs: number;
  /** File with the guest's console (kernel log and init.sh messages); kept after stop(). */
  readonly consoleLog: string;
  /** Plain addresses (no prefix length) of the guest's eth0 and of tap0. */
  readonly guest: { ip4: string; ip6: string };
  readonly host: { ip4: string; ip6: string };
  /** WireGuard interface created at boot, or null. */
  readonly wgInterface: string | null;
  /** qemu's PID. */
  readonly pid: number;
  /**
   * Runs a sh script in the guest (busybox, `wg`, iproute2 `ip` at /sbin/ip). Resolves with its
   * output and status; rejects only if the VM died or did not answer within timeoutMs + slack.
   */
  exec(script: string, timeoutMs?: number): Promise<ExecResult>;
  /** exec, but resolves with the output and rejects with it when the status is not 0. */
  run(script: string, timeoutMs?: number): Promise<string>;
  /** `wg setconf IFACE` with this config text (wg(8) format, not wg-quick's). */
  setConf(conf: string, iface?: string): Promise<void>;
  /** Parsed `wg show IFACE dump`. */
  wgDump(iface?: string): Promise<WgDump>;
  /**
   * Pings from the guest (busybox ping); never rejects for lost packets, rejects if ping itself
   * was killed by its timeout. Defaults: count 3, interval 0.2 s, deadline count * interval + 3 s.
   */
  ping(address: string, options?: PingOptions): Promise<PingResult>;
  /** Kills qemu and deletes the namespace. Idempotent; never rejects. */
  stop(): Promise<void>;
}

function stripPrefix(cidr: string): string {
  return cidr.replace(/\/\d+$/, '');
}

/**
 * Runs prepare.sh (downloads and unpacks Debian's kernel package on first use, seconds; instant
 * when cached). Resolves with the cached kernel's paths; rejects with prepare.sh's message.
 */
export async function prepareKernel(): Promise<KernelImage> {
  const out = await check(null, ['bash', join(HERE, 'prepare.sh')], {
    timeoutMs: PREPARE_TIMEOUT_MS,
  });
  const field = (k: string): string => {
    const m = new RegExp(`^${k}=(.*)$`, 'm').exec(out);
    if (m?.[1] === undefined) throw new Error(`prepare.sh printed no ${k}`);
    return m[1];
  };
  return {
    release: field('KERNEL_RELEASE'),
    image: field('KERNEL_IMAGE'),
    modulesDir: field('KERNEL_MODULES'),
  };
}

interface Pending {
  resolve: (r: ExecResult) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  lines: string[];
  collecting: boolean;
  /** The command's frame, kept to send again when the guest asks (@@X). */
  frame: string;
  resends: number;
}

/** Reads init.sh's control frames from qemu's stdout and matches them to commands. */
class ControlChannel {
  private nextId = 1;
  private buffer = '';
  private readonly pending = new Map<number, Pending>();
  private queue: Promise<unknown> = Promise.resolve();
  private dead: Error | null = null;
  private onReady: ((release: string) => void) | null = null;

  constructor(private readonly child: ChildProcess) {
    child.stdout?.setEncoding('latin1');
    child.stdout?.on('data', (chunk: string) => this.feed(chunk));
    // qemu gone: its exit handler reports why; the write error itself adds nothing.
    child.stdin?.on('error', () => undefined);
  }

  ready(): Promise<string> {
    return new Promise((res) => {
      this.onReady = res;
    });
  }

  fail(err: Error): void {
    this.dead ??= err;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
  }

  private feed(chunk: string): void {
    this.buffer += chunk;
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl).replace(/\r$/, '');
      this.buffer = this.buffer.slice(nl + 1);
      this.line(line);
    }
  }

  private line(line: string): void {
    const [tag, a, b] = line.split(' ');
    if (tag === '@@READY') {
      this.onReady?.(a ?? '');
      this.onReady = null;
      return;
    }
    if (tag === '@@B') {
      const p = this.pending.get(Number(a));
      if (p !== undefined) p.collecting = true;
      return;
    }
    if (tag === '@@X') {
      // The guest read a line that is not a whole frame: the one in flight lost bytes on the way.
      for (const [id, p] of this.pending) {
        if (p.collecting) continue;
        if (p.resends >= FRAME_RESENDS) {
          this.pending.delete(id);
          clearTimeout(p.timer);
          p.reject(new Error(`guest could not read command ${id}'s frame ${p.resends + 1} times`));
          continue;
        }
        p.resends++;
        this.child.stdin?.write(p.frame);
      }
      return;
    }
    if (tag === '@@E') {
      const id = Number(a);
      const p = this.pending.get(id);
      if (p === undefined) return; // an answer that arrived after its host-side timeout
      this.pending.delete(id);
      clearTimeout(p.timer);
      const output = Buffer.from(p.lines.join(''), 'base64').toString('utf8');
      p.resolve({ output, status: Number(b) });
      return;
    }
    for (const p of this.pending.values()) if (p.collecting) p.lines.push(line);
  }

  exec(script: string, timeoutMs: number): Promise<ExecResult> {
    // One command at a time: the guest runs them in order anyway, and this keeps timeouts honest.
    const run = this.queue.then(() => this.send(script, timeoutMs));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private send(script: string, timeoutMs: number): Promise<ExecResult> {
    if (this.dead !== null) return Promise.reject(this.dead);
    const id = this.nextId++;
    const guestTimeoutSec = Math.max(1, Math.ceil(timeoutMs / 1000));
    return new Promise((res, rej) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        rej(new Error(`guest did not answer command ${id} within ${timeoutMs + EXEC_SLACK_MS} ms`));
      }, timeoutMs + EXEC_SLACK_MS);
      const b64 = Buffer.from(script, 'utf8').toString('base64');
      const frame = `C ${id} ${guestTimeoutSec} ${b64.length} ${b64}\n`;
      this.pending.set(id, {
        resolve: res,
        reject: rej,
        timer,
        lines: [],
        collecting: false,
        frame,
        resends: 0,
      });
      this.child.stdin?.write(frame);
    });
  }
}

function consoleTail(path: string): string {
  try {
    const lines = readFileSync(path, 'utf8').split('\n');
    return lines.slice(-CONSOLE_TAIL_LINES).join('\n');
  } catch {
    return '(no console output)';
  }
}

/**
 * Prepares the kernel, builds a fresh initramfs, creates namespace `wmk-<pid>-<hex>` with tap0,
 * boots the VM on it and waits (bounded) for its control channel. Resolves with the running VM;
 * rejects with the console's tail if it does not come up, after cleaning up everything it made.
 */
export async function startKernelVm(options: KernelVmOptions = {}): Promise<KernelVm> {
  const o = {
    guestAddress4: '10.201.0.2/24',
    hostAddress4: '10.201.0.1/24',
    guestAddress6: 'fd77:201::2/64',
    hostAddress6: 'fd77:201::1/64',
    wgInterface: 'wg0' as string | null,
    bootTimeoutMs: 90_000,
    memoryMb: 256,
    extraBinaries: [] as string[],
    dumpIntervalSec: 0,
    ...options,
  };
  const kernel = await prepareKernel();
  const netns = createNamespace(NS_TAG);
  const runsDir = join(REPO, '.wiremesh-test', 'kernel-vm');
  // Each run keeps its console log for a post-mortem until a later run finds its owner gone.
  mkdirSync(runsDir, { recursive: true });
  for (const old of readdirSync(runsDir)) {
    if (isStaleName(old, NS_TAG)) rmSync(join(runsDir, old), { recursive: true, force: true });
  }
  const workDir = join(runsDir, netns);
  let child: ChildProcess | null = null;
  try {
    mkdirSync(workDir, { recursive: true });
    const initrd = join(workDir, 'initrd.gz');
    const consoleLog = join(workDir, 'console.log');
    await check(
      null,
      ['bash', join(HERE, 'build-initramfs.sh'), kernel.modulesDir, initrd, ...o.extraBinaries],
      { timeoutMs: BUILD_INITRAMFS_TIMEOUT_MS },
    );

    const ip = (...args: string[]): Promise<string> => check(null, ['ip', '-n', netns, ...args]);
    await ip('tuntap', 'add', 'tap0', 'mode', 'tap');
    await ip('addr', 'add', o.hostAddress4, 'dev', 'tap0');
    await ip('-6', 'addr', 'add', o.hostAddress6, 'dev', 'tap0', 'nodad');
    await ip('link', 'set', 'tap0', 'up');

    const append = [
      'console=ttyS0',
      'panic=-1',
      'quiet',
      `wm.ip4=${o.guestAddress4}`,
      `wm.ip6=${o.guestAddress6}`,
      ...(o.wgInterface === null ? [] : [`wm.wg=${o.wgInterface}`]),
      ...(o.dumpIntervalSec > 0 ? [`wm.dump=${o.dumpIntervalSec}`] : []),
    ].join(' ');
    // ttyS0 (console) goes to a file; ttyS1 is the control channel on qemu's stdin/stdout.
    const args = [
      ['-accel', 'tcg'],
      ['-machine', 'pc'],
      ['-cpu', 'max'],
      ['-smp', '1'],
      ['-m', `${o.memoryMb}M`],
      ['-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot'],
      ['-kernel', kernel.image],
      ['-initrd', initrd],
      ['-append', append],
      ['-serial', `file:${consoleLog}`],
      ['-serial', 'stdio'],
      ['-netdev', 'tap,id=n0,ifname=tap0,script=no,downscript=no'],
      // No option ROM: nothing boots from the network, and the firmware skips loading iPXE.
      ['-device', 'virtio-net-pci,netdev=n0,mac=52:54:00:77:00:02,romfile='],
    ].flat();
    const started = performance.now();
    const qemu = spawnChild(netns, ['qemu-system-x86_64', ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child = qemu;
    let stderr = '';
    qemu.stderr?.setEncoding('utf8');
    qemu.stderr?.on('data', (s: string) => {
      stderr = (stderr + s).slice(-STDERR_KEEP_CHARS);
    });
    const channel = new ControlChannel(qemu);
    const exited = new Promise<Error>((res) => {
      qemu.once('exit', (code, signal) => {
        const err = new Error(
          `qemu exited (${signal ?? `status ${code}`}): ${stderr.trim()}\n--- console tail ---\n${consoleTail(consoleLog)}`,
        );
        channel.fail(err);
        res(err);
      });
      qemu.once('error', (e) => res(new Error(`cannot start qemu: ${e.message}`)));
    });

    let bootTimer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<Error>((res) => {
      bootTimer = setTimeout(
        () =>
          res(
            new Error(
              `VM not ready within ${o.bootTimeoutMs} ms\n--- console tail ---\n${consoleTail(consoleLog)}`,
            ),
          ),
        o.bootTimeoutMs,
      );
    });
    const first = await Promise.race([channel.ready(), exited, timedOut]);
    clearTimeout(bootTimer);
    if (first instanceof Error) throw first;
    const bootMs = performance.now() - started;
    rmSync(initrd, { force: true });

    const wgIface = o.wgInterface;
    let stopped: Promise<void> | null = null;
    const vm: KernelVm = {
      netns,
      kernelRelease: first,
      bootMs,
      consoleLog,
      guest: { ip4: stripPrefix(o.guestAddress4), ip6: stripPrefix(o.guestAddress6) },
      host: { ip4: stripPrefix(o.hostAddress4), ip6: stripPrefix(o.hostAddress6) },
      wgInterface: wgIface,
      pid: qemu.pid ?? -1,
      exec: (script, timeoutMs = DEFAULT_EXEC_TIMEOUT_MS) => channel.exec(script, timeoutMs),
      async run(script, timeoutMs) {
        const r = await vm.exec(script, timeoutMs);
        if (r.status !== 0)
          throw new Error(`guest command failed (status ${r.status}): ${r.output.trim()}`);
        return r.output;
      },
      async setConf(conf, iface = wgIface ?? 'wg0') {
        // The config holds keys: it travels base64 on the control channel and is never logged.
        const b64 = Buffer.from(conf, 'utf8').toString('base64');
        await vm.run(`echo '${b64}' | base64 -d | wg setconf '${iface}' /dev/stdin`);
      },
      async wgDump(iface = wgIface ?? 'wg0') {
        return parseDump(await vm.run(`wg show '${iface}' dump`));
      },
      async ping(
        address,
        { count = 3, intervalSec = 0.2, deadlineSec = count * intervalSec + 3 } = {},
      ) {
        const deadline = Math.ceil(deadlineSec);
        // busybox ping honours -w only while sending: after the last packet it waits -W (default
        // 10 s) for a first reply, which outlived the guest timeout and left a stray ping behind.
        const sending = Math.min(deadline, Math.ceil((count - 1) * intervalSec));
        const r = await vm.exec(
          `ping -c ${count} -i ${intervalSec} -w ${deadline} -W ${deadline} '${address}'`,
          (sending + deadline + PING_EXIT_MARGIN_SEC) * 1000,
        );
        const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(r.output);
        // Without its statistics a killed ping would read as "0 received", passing a no-traffic check.
        if (m === null && TIMED_OUT_STATUSES.has(r.status))
          throw new Error(`guest ping ${address} did not finish (status ${r.status}): ${r.output}`);
        return {
          transmitted: Number(m?.[1] ?? 0),
          received: Number(m?.[2] ?? 0),
          output: r.output,
        };
      },
      stop() {
        stopped ??= (async () => {
          await stopChild(qemu, QEMU_STOP_GRACE_MS);
          deleteNamespace(netns);
        })();
        return stopped;
      },
    };
    return vm;
  } catch (err) {
    if (child !== null) await stopChild(child, QEMU_STOP_GRACE_MS);
    deleteNamespace(netns);
    throw err;
  }
}
