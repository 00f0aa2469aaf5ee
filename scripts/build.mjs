// `npm run build` (scripts/setup.sh runs it): bundles the CLI (cli/main.ts and everything
// it imports, npm packages included) into one ESM file, dist/infer.mjs, with esbuild, and
// copies each backend's kernel templates to dist/templates/<backend>/. Why a bundle: the
// parser library alone costs ~0.9 s to import as hundreds of small modules and ~0.2 s as
// one file, and tsx would transpile every source at each start. bin/infer.mjs runs the
// bundle when it is newer than every source file, else the sources through tsx.
// Native packages (Dawn's webgpu, node-llama-cpp) stay external: node loads them as usual.
import { build } from 'esbuild';
import { cpSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
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
await build({
  entryPoints: [join(root, 'cli', 'main.ts')], outfile: join(dist, 'infer.mjs'), bundle: true, format: 'esm', platform: 'node',
  target: 'node20', external: ['webgpu', 'node-llama-cpp'], plugins: [templateDirs], logLevel: 'warning',
  // Bundled CommonJS packages (handlebars) call require(); give the ESM bundle one.
  banner: { js: "import { createRequire as __inferRequire } from 'node:module'; const require = __inferRequire(import.meta.url);" },
});
for (const backend of readdirSync(join(root, 'backends'), { withFileTypes: true })) {
  const templates = join(root, 'backends', backend.name, 'templates');
  if (backend.isDirectory() && statSync(templates, { throwIfNoEntry: false })?.isDirectory()) {
    cpSync(templates, join(dist, 'templates', backend.name), { recursive: true });
  }
}
console.error(`build: ${join('dist', 'infer.mjs')} (${(statSync(join(dist, 'infer.mjs')).size / 1024).toFixed(0)} KiB) and its templates`);
