// Vitest global setup: makes sure the real servers the integration tests
// drive are installed. CI machines start fresh, so this installs Debian's
// docker-registry (distribution 2.8), skopeo, apache2-utils (htpasswd),
// docker.io (dockerd 20.10 with BuildKit inside, and Debian's own docker CLI),
// busybox-static (the base image the BuildKit tests build on) and graphviz
// (renders the DOT that `inspect --format dot` prints) when any is missing. Nothing here reaches anything but Debian's archive.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const NEEDED: Record<string, string> = {
  '/usr/bin/docker-registry': 'docker-registry',
  '/usr/bin/skopeo': 'skopeo',
  '/usr/bin/htpasswd': 'apache2-utils',
  '/usr/bin/openssl': 'openssl',
  '/usr/sbin/dockerd': 'docker.io',
  '/usr/bin/docker': 'docker.io',
  '/bin/busybox': 'busybox-static',
  '/usr/bin/dot': 'graphviz',
};

export default function setup(): void {
  const missing = [...new Set(Object.entries(NEEDED).filter(([bin]) => !existsSync(bin)).map(([, pkg]) => pkg))];
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    throw new Error(`integration tests need these Debian packages, and installing them needs root: ${missing.join(' ')}`);
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  // Output goes to stderr so a slow first run shows why it is slow.
  execFileSync('apt-get', ['update'], { stdio: ['ignore', 2, 2], env });
  execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { stdio: ['ignore', 2, 2], env });
  const still = Object.keys(NEEDED).filter((bin) => !existsSync(bin));
  if (still.length) throw new Error(`still missing after apt-get install: ${still.join(' ')}`);
}
