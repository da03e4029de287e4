import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const pkg = (name: string) => fileURLToPath(new URL(`./packages/${name}/src`, import.meta.url));

// Tests import the workspace packages from source, so no build is needed to run unit tests.
// tsconfig.tests.json maps the same names in `paths` for the type check: keep the two in step.
const alias = [
  { find: /^@wiremesh\/wg-core$/, replacement: `${pkg('wg-core')}/index.ts` },
  { find: /^@wiremesh\/wg-core\/engine$/, replacement: `${pkg('wg-core')}/engine.ts` },
  { find: /^@wiremesh\/wg-core\/native$/, replacement: `${pkg('wg-core')}/native.ts` },
  { find: /^@wiremesh\/wg-tun$/, replacement: `${pkg('wg-tun')}/index.ts` },
  { find: /^@wiremesh\/protocol$/, replacement: `${pkg('protocol')}/index.ts` },
  { find: /^@wiremesh\/mesh-agent$/, replacement: `${pkg('mesh-agent')}/index.ts` },
  { find: /^@wiremesh\/coordinator$/, replacement: `${pkg('coordinator')}/index.ts` },
];

export default defineConfig({
  test: {
    projects: [
      {
        resolve: { alias },
        test: {
          name: 'unit',
          include: ['packages/*/test/**/*.test.ts'],
          testTimeout: 20_000,
          // The soak tests measure the heap after a real GC (mesh-agent test/soak.test.ts).
          execArgv: ['--expose-gc'],
        },
      },
      {
        resolve: { alias },
        test: {
          name: 'system',
          include: ['test/**/*.test.ts'],
          // System tests share /var/run/wireguard and build namespaces: one file at a time.
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
