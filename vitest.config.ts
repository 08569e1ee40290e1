// Unit tests live in test/, real-server tests in integration/. The global
// setup installs the registry and tools the integration tests start.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'integration/**/*.test.ts'],
    globalSetup: ['integration/global-setup.ts'],
    // Registry round trips with 20 MiB blobs and retry back-offs take seconds, not ms.
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
