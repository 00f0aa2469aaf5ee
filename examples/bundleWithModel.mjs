// Builds an example app around a generated model module, as an app's own build would:
//   1. `infer compile SPEC --target ts [--weights FILE] --out OUT/gen` writes the module;
//   2. esbuild bundles the app's entry and the module as two entries sharing chunks, so the
//      app loads the model with `import('./model.js')` and one copy of the runtime serves both.
// In this repository `infer-compiler/runtime` and `.../runtime/node` resolve to the sources
// (an installed package resolves them through its exports instead).
import { execFileSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Returns the generated module's path. `platform`: 'browser' (the web page) or 'node'. */
export async function bundleWithModel({ entry, spec, weights, out, platform }) {
  rmSync(out, { recursive: true, force: true });
  const gen = join(out, 'gen');
  execFileSync(process.execPath, [join(root, 'bin', 'infer.mjs'), 'compile', spec, '--target', 'ts', '--out', gen, ...(weights ? ['--weights', weights] : [])], { stdio: 'inherit' });
  const module = join(gen, readdirSync(gen).find((f) => f.endsWith('.ts')));
  await build({
    entryPoints: { main: entry, model: module }, outdir: out, bundle: true, splitting: true, format: 'esm',
    outExtension: { '.js': platform === 'node' ? '.mjs' : '.js' }, chunkNames: 'chunks/[name]-[hash]',
    platform, target: platform === 'node' ? 'node20' : 'es2022', logLevel: 'warning',
    alias: { 'infer-compiler/runtime': join(root, 'runtime', 'embed', 'index.ts'), 'infer-compiler/runtime/node': join(root, 'runtime', 'embed', 'node.ts') },
    // Dawn's native bindings load at run time in node; a browser never reaches them.
    external: ['webgpu'],
  });
  return module;
}
