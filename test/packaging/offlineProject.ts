// An empty project that installs a packed infer-compiler tarball with no network: its
// package-lock.json names the tarball (by path and sha512) and each of the package's
// dependencies, transitively, at the versions and integrity hashes of the repository's own
// lockfile, so `npm ci --offline` takes every one from the npm cache that installing this
// repository filled. (A bare `npm install --offline` would need the registry's metadata
// documents, which `npm ci` never caches.)
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

interface LockEntry { version: string; integrity?: string; dependencies?: Record<string, string>; optionalDependencies?: Record<string, string>; [k: string]: unknown }

export function writeOfflineProject(dir: string, tarball: string, repoLock: string, packageJson: { version: string; dependencies: Record<string, string>; bin: unknown }): void {
  const lock = JSON.parse(readFileSync(repoLock, 'utf8')) as { packages: Record<string, LockEntry> };
  const picked = new Map<string, LockEntry>();
  const visit = (name: string): void => {
    const key = `node_modules/${name}`;
    if (picked.has(key)) return;
    const e = lock.packages[key];
    if (!e) throw new Error(`the repository's lockfile has no ${key}, a dependency of the packed package`);
    picked.set(key, e);
    for (const d of [...Object.keys(e.dependencies ?? {}), ...Object.keys(e.optionalDependencies ?? {})]) if (lock.packages[`node_modules/${d}`]) visit(d);
  };
  for (const d of Object.keys(packageJson.dependencies)) visit(d);
  const packages: Record<string, unknown> = {
    '': { name: 'empty-app', dependencies: { 'infer-compiler': `file:${tarball}` } },
    'node_modules/infer-compiler': {
      version: packageJson.version, resolved: `file:${tarball}`, dependencies: packageJson.dependencies, bin: packageJson.bin,
      integrity: `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`,
    },
  };
  for (const [key, e] of picked) {
    const name = key.slice('node_modules/'.length);
    const { dev: _dev, peer: _peer, ...entry } = e;
    packages[key] = { ...entry, resolved: `https://registry.npmjs.org/${name}/-/${name.split('/').pop()}-${e.version}.tgz` };
  }
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'empty-app', private: true, type: 'module', dependencies: { 'infer-compiler': `file:${tarball}` } }, null, 2));
  writeFileSync(join(dir, 'package-lock.json'), JSON.stringify({ name: 'empty-app', lockfileVersion: 3, requires: true, packages }, null, 2));
}
