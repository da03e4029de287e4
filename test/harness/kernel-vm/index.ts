// Kernel interop harness: Debian's kernel WireGuard in a qemu VM, userspace peers in the VM's
// namespace, and the helpers both use. Import this module, not the files behind it; namespaces,
// processes and polling are the system-test harness's own (../netns.ts).
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
export { parseDump as parseWgDump } from '../wg-dump.js';
export type { WgDump, WgDumpPeer } from '../wg-dump.js';
export { vmRunner, vmWriteSecret } from './vm-runner.js';
