// Runs Vitest over both projects and closes with one plain line: "Tests: N passed, N failed, N skipped".
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';

mkdirSync('.wiremesh-test', { recursive: true });
const out = '.wiremesh-test/results.json';
const args = ['exec', 'vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${out}`, ...process.argv.slice(2)];
const run = spawnSync('pnpm', args, { stdio: 'inherit' });

let passed = 0, failed = 0, skipped = 0;
try {
  const r = JSON.parse(readFileSync(out, 'utf8'));
  passed = r.numPassedTests;
  failed = r.numFailedTests;
  skipped = r.numPendingTests + r.numTodoTests;
  if (!r.success && failed === 0) failed = 1; // a suite that failed to load counts as a failure
} catch {
  failed = 1;
}
console.log(`Tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(run.status === 0 && failed === 0 && passed > 0 ? 0 : 1);
