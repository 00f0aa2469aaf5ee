// `npm run build` (scripts/setup.sh runs it): bundles the CLI (cli/main.ts and everything
// it imports, npm packages included) into one ESM file, dist/infer.mjs, with esbuild, and
// copies each backend's kernel templates to dist/templates/<backend>/. Why a bundle: the
// parser library alone costs ~0.9 s to import as hundreds of small modules and ~0.2 s as
// one file, and tsx would transpile every source at each start. bin/infer.mjs runs the
// bundle when it is newer than every source file, else the sources through tsx.
// Native packages (Dawn's webgpu, node-llama-cpp) stay external: node loads them as usual, and
// so does ts-morph (loaded only by `compile --target ts`; bundled it would triple every start).
//
// The package's other entries (package.json "exports") are built here too:
//   dist/compiler.mjs      infer-compiler          the compiler API (cli/api.ts), node
//   dist/runtime.mjs       infer-compiler/runtime  the browser-safe core generated modules import
//   dist/runtime-node.mjs  .../runtime/node        a Dawn device and file-path weights, node
// The two runtime entries share chunks (dist/chunks/), so a model made by one and a device
// made by the other share module state (the device's error log, the pipeline cache).
// `--types` also writes their declarations to dist/types/ (tsc, declarations only), as
// `npm pack` needs them (scripts/pack.mjs).
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { cpSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');

// A backend reads its templates from new URL('./templates/', import.meta.url); in the bundle
// every module's import.meta.url is dist/infer.mjs, so each backend's folder gets its name.
const templatesOf = (file) => file.match(/backends[\\/](\w+)[\\/]/)?.[1];
const templateDirs = {
  name: 'template-dirs',
  setup(b) {
    b.onLoad({ filter: /backends[\\/]\w+[\\/][\w.]+\.ts$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes("new URL('./templates/', import.meta.url)")) return undefined;
      return { contents: text.replaceAll("new URL('./templates/', import.meta.url)", `new URL('./templates/${templatesOf(args.path)}/', import.meta.url)`), loader: 'ts' };
    });
  },
};

rmSync(dist, { recursive: true, force: true });
const nodeBundle = {
  bundle: true, format: 'esm', platform: 'node', target: 'node20', external: ['webgpu', 'node-llama-cpp', 'ts-morph'], plugins: [templateDirs], logLevel: 'warning',
  // Bundled CommonJS packages (handlebars) call require(); give the ESM bundle one.
  banner: { js: "import { createRequire as __inferRequire } from 'node:module'; const require = __inferRequire(import.meta.url);" },
};
await build({ ...nodeBundle, entryPoints: [join(root, 'cli', 'main.ts')], outfile: join(dist, 'infer.mjs') });
await build({ ...nodeBundle, entryPoints: [join(root, 'cli', 'api.ts')], outfile: join(dist, 'compiler.mjs') });
// Platform-neutral ESM: a browser bundler takes runtime.mjs as it is (node: imports appear
// only in runtime-node.mjs and its own chunks, never in a chunk runtime.mjs imports).
await build({
  entryPoints: { runtime: join(root, 'runtime', 'embed', 'index.ts'), 'runtime-node': join(root, 'runtime', 'embed', 'node.ts') },
  outdir: dist, outExtension: { '.js': '.mjs' }, chunkNames: 'chunks/[name]-[hash]', splitting: true, bundle: true, format: 'esm',
  platform: 'neutral', target: 'es2022', external: ['webgpu', 'node:*'], mainFields: ['module', 'main'], logLevel: 'warning',
});
if (process.argv.includes('--types')) buildTypes();
for (const backend of readdirSync(join(root, 'backends'), { withFileTypes: true })) {
  const templates = join(root, 'backends', backend.name, 'templates');
  if (backend.isDirectory() && statSync(templates, { throwIfNoEntry: false })?.isDirectory()) {
    cpSync(templates, join(dist, 'templates', backend.name), { recursive: true });
  }
}
console.error(`build: ${join('dist', 'infer.mjs')} (${(statSync(join(dist, 'infer.mjs')).size / 1024).toFixed(0)} KiB) and its templates`);

/**
 * Declarations for the package's entries (dist/types/, mirroring the sources): tsc writes
 * them from the project's settings; relative `.ts` specifiers become `.js` (which every
 * TypeScript resolution maps to the `.d.ts` beside it), and the entries name the WebGPU
 * types their signatures use.
 */
function buildTypes() {
  const out = join(dist, 'types');
  const entries = ['cli/api.ts', 'cli/main.ts', 'runtime/embed/index.ts', 'runtime/embed/node.ts'];
  execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'),
    // tsconfig.json's settings (a project file cannot be combined with a list of entries).
    '--target', 'ES2022', '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--strict', '--esModuleInterop', '--skipLibCheck',
    '--resolveJsonModule', '--allowImportingTsExtensions', '--types', 'node,@webgpu/types', '--lib', 'ES2022,DOM',
    '--declaration', '--emitDeclarationOnly', '--outDir', out, '--rootDir', root, ...entries.map((e) => join(root, e))], { stdio: 'inherit' });
  const rewrite = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) { rewrite(p); continue; }
      const text = readFileSync(p, 'utf8').replace(/((?:from|import)\s*\(?\s*['"]\.{1,2}\/[^'"]*)\.ts(['"])/g, '$1.js$2');
      writeFileSync(p, text);
    }
  };
  rewrite(out);
  for (const e of entries) {
    const p = join(out, e.replace(/\.ts$/, '.d.ts'));
    writeFileSync(p, `/// <reference types="@webgpu/types" />\n${readFileSync(p, 'utf8')}`);
  }
}
