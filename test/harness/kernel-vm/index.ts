// Kernel interop harness: Debian's kernel WireGuard in a qemu VM, userspace peers in the VM's
// namespace, and the helpers both use. Import this module, not the files behind it.
export { prepareKernel, startKernelVm } from './kernel-vm.js';
export type {
  ExecResult,
  KernelImage,
  KernelVm,
  KernelVmOptions,
  PingOptions,
  PingResult,
} from './kernel-vm.js';
export { startUserspaceWg } from './userspace-wg.js';
export type { UserspaceWg, UserspaceWgOptions } from './userspace-wg.js';
export { parseWgDump } from './wg-dump.js';
export type { WgDump, WgDumpInterface, WgDumpPeer } from './wg-dump.js';
export { pollUntil } from './poll.js';
export { createNamespace, deleteNamespace, nsCheck, nsRun, cleanupAllSync } from './netns.js';
export type { RunResult } from './netns.js';
export { vmRunner, vmWriteSecret } from './vm-runner.js';
