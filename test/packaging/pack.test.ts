// The npm package: `npm run pack` (scripts/pack.mjs) makes a tarball; an empty project
// outside the repository installs it with no network (npm ci --offline, see
// offlineProject.ts), compiles the fixture spec with the installed `infer` command
// (--target ts), type-checks the module against the installed declarations under --strict,
// and generates tokens with it on WebGPU through `infer-compiler/runtime` and
// `infer-compiler/runtime/node`: the same tokens as the CPU engine here.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { cli } from '../cli/runCli.ts';
import { ROOT, SMALL_SPEC, writeSmallGguf } from '../fixtures/embed/smallModel.ts';
import { writeOfflineProject } from './offlineProject.ts';

const app = mkdtempSync(join(tmpdir(), 'infer-pack-'));
afterAll(() => rmSync(app, { recursive: true, force: true }));
const run = (cmd: string, args: string[], cwd = app) => execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_config_update_notifier: 'false' } });

describe('npm pack', () => {
  it('installs offline into an empty project, compiles there and generates the CPU engine\'s tokens', () => {
    const tarball = run(process.execPath, [join(ROOT, 'scripts', 'pack.mjs')], ROOT).trim().split('\n').pop()!;
    expect(tarball).toMatch(/infer-compiler-[\d.]+\.tgz$/);
    const packed = JSON.parse(readFileSync(join(ROOT, '.tmp', 'pack', 'stage', 'package.json'), 'utf8'));
    expect(packed.private).toBeUndefined();
    writeOfflineProject(app, tarball, join(ROOT, 'package-lock.json'), packed);
    run('npm', ['ci', '--offline', '--ignore-scripts', '--no-audit', '--no-fund']);

    const gguf = writeSmallGguf(app);
    run(join(app, 'node_modules', '.bin', 'infer'), ['compile', SMALL_SPEC, '--target', 'ts', '--weights', gguf, '--out', 'gen']);
    const module = join(app, 'gen', 'small_llama.ts');
    expect(readFileSync(module, 'utf8')).toMatch(/from "infer-compiler\/runtime";/);

    // The installed declarations: the module and a caller type-check under --strict.
    writeFileSync(join(app, 'use.ts'), [
      "import { createModel } from './gen/small_llama.ts';",
      "import { nodeDevice, weightsFromPath } from 'infer-compiler/runtime/node';",
      "import { emitModule } from 'infer-compiler';",
      'export async function go(): Promise<number[]> {',
      "  const m = await createModel(await nodeDevice(), weightsFromPath('x.gguf'));",
      "  const ids: number[] = [(await emitModule('', 'a.infer')).text.length];",
      '  for await (const t of m.generate([1], { maxTokens: 1 })) ids.push(t.id);',
      '  return ids;',
      '}',
    ].join('\n'));
    const program = ts.createProgram([module, join(app, 'use.ts')], {
      strict: true, noEmit: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
      allowImportingTsExtensions: true, skipLibCheck: true, types: ['@webgpu/types'], lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
    });
    expect(ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'))).toEqual([]);

    // The user's build step (here: TypeScript's transpiler), then plain node in the project.
    writeFileSync(join(app, 'gen', 'small_llama.mjs'), ts.transpileModule(readFileSync(module, 'utf8'), { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext } }).outputText);
    writeFileSync(join(app, 'main.mjs'), [
      "import { createModel } from './gen/small_llama.mjs';",
      "import { nodeDevice, weightsFromPath } from 'infer-compiler/runtime/node';",
      'const device = await nodeDevice();',
      `const model = await createModel(device, weightsFromPath(${JSON.stringify(gguf)}));`,
      'const ids = [];',
      'for await (const t of model.generate([1, 300, 301, 302], { maxTokens: 16, ignoreEos: true })) ids.push(t.id);',
      'console.log(JSON.stringify(ids));',
      'model.dispose(); device.destroy();',
    ].join('\n'));
    const tokens = JSON.parse(run(process.execPath, ['main.mjs']).trim().split('\n').pop()!);
    return cli('run', SMALL_SPEC, '--weights', gguf, '--backend', 'cpu', '--tokens', '1,300,301,302', '--max-tokens', '16', '--ignore-eos', '--json').then((r) => {
      expect(r.code, r.err).toBe(0);
      expect(tokens).toHaveLength(16);
      expect(tokens).toEqual(JSON.parse(r.out).tokens);
    });
  // It builds the package (esbuild, tsc declarations) and installs it: about 40 s of CPU in
  // child processes, which the suite's 2 workers share with every other file.
  }, 300_000);
});
