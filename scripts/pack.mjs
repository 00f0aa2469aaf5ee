// `npm run pack`: the npm package as a tarball, .tmp/pack/infer-compiler-VERSION.tgz.
// Builds the bundles and declarations (scripts/build.mjs --types), then stages dist/, bin/
// and README.md with a package.json made from this one for installing: not private, and
// depending only on what the bundles leave external (Dawn's `webgpu`, `ts-morph` for
// `compile --target ts`, `@webgpu/types` for the declarations), at this package's pinned
// versions. Everything else (chevrotain, handlebars, the tokenizers' code) is in the bundles.
// The repository's own package.json keeps "private": true and its development dependencies.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const RUNTIME_DEPENDENCIES = ['webgpu', 'ts-morph', '@webgpu/types'];

const out = join(root, '.tmp', 'pack');
const stage = join(out, 'stage');
if (!process.argv.includes('--no-build')) execFileSync(process.execPath, [join(root, 'scripts', 'build.mjs'), '--types'], { stdio: 'inherit' });
rmSync(out, { recursive: true, force: true });
mkdirSync(stage, { recursive: true });
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const dependencies = Object.fromEntries(RUNTIME_DEPENDENCIES.map((d) => {
  if (!pkg.dependencies[d]) throw new Error(`package.json has no dependency ${d}, which the bundles leave external`);
  return [d, pkg.dependencies[d]];
}));
const { private: _private, scripts: _scripts, config: _config, dependencies: _all, ...rest } = pkg;
writeFileSync(join(stage, 'package.json'), JSON.stringify({ ...rest, dependencies }, null, 2) + '\n');
for (const p of pkg.files) cpSync(join(root, p), join(stage, p), { recursive: true });
const name = execFileSync('npm', ['pack', '--pack-destination', out, '--silent'], { cwd: stage, encoding: 'utf8' }).trim().split('\n').pop();
console.log(join(out, name));
