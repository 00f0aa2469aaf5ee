// `infer compile --target ts` (backends/ts): the generated module type-checks under
// `tsc --strict` (and a misuse of its types fails to), matches its snapshot, keeps hostile
// names inert, and decodes the same tokens as `infer run` on WebGPU and on the CPU engine,
// from an ArrayBuffer, a Blob, a URL and a node path, with text through the file's tokenizer.
import { createServer, type Server } from 'node:http';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emitTsModule } from '../../backends/ts/emitModule.ts';
import { renderForTargets } from '../../backends/ts/renderTargets.ts';
import { wgslBackend } from '../../backends/wgsl/render.ts';
import { compileSpec } from '../../compiler/compile.ts';
import { nodeDevice, weightsFromPath } from '../../runtime/embed/node.ts';
import { cli } from '../cli/runCli.ts';
import { compileSmallModule, ROOT, SMALL_SPEC, writeSmallGguf } from '../fixtures/embed/smallModel.ts';
import type { CreateModelOptions, InferModel, WeightsInput } from '../../runtime/embed/index.ts';

// The generated file exists only once a test has written it (.tmp is not in the repository),
// so the suite's type-check cannot import its types; its own strict type-check is tested above.
type GeneratedModule = {
  createModel(device: GPUDevice, weights: WeightsInput, options?: CreateModelOptions): Promise<InferModel<unknown>>;
};

const DIR = join(ROOT, '.tmp', 'ts-module-test');
const PROMPT = [1, 300, 301, 302];
let gguf = '';
let moduleFile = '';
let device: GPUDevice;

beforeAll(async () => {
  rmSync(DIR, { recursive: true, force: true });
  gguf = writeSmallGguf(DIR);
  moduleFile = (await compileSmallModule(DIR, gguf)).file;
  device = await nodeDevice();
});
afterAll(() => device?.destroy());

/** Type-checks `files` as tsc --strict would (the project's libs and WebGPU types); returns the messages. */
function typeCheck(files: string[]): string[] {
  const program = ts.createProgram(files, {
    strict: true, noEmit: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
    allowImportingTsExtensions: true, skipLibCheck: true, types: ['node', '@webgpu/types'], lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
    typeRoots: [join(ROOT, 'node_modules', '@types'), join(ROOT, 'node_modules')],
  });
  return ts.getPreEmitDiagnostics(program).map((d) => `${d.file?.fileName ?? ''}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
}

describe('infer compile --target ts', () => {
  it('writes a module that type-checks under --strict, with typed config literals, and rejects misuse', () => {
    const use = join(DIR, 'use.ts');
    writeFileSync(use, [
      "import { config, createModel, type small_llamaModel } from './small_llama.ts';",
      'const vocab: 320 = config.vocab;',
      'export async function run(device: GPUDevice, bytes: ArrayBuffer): Promise<number[]> {',
      '  const model: small_llamaModel = await createModel(device, bytes, { onProgress: (p) => void p.loadedBytes });',
      '  const logits: Float32Array = await model.prefill([1, 2]);',
      '  const ids: number[] = [vocab, logits.length];',
      '  for await (const t of model.generate("hi", { maxTokens: 2, temperature: 0 })) ids.push(t.id);',
      '  model.dispose();',
      '  return ids;',
      '}',
    ].join('\n'));
    // The checker sees the module's real types: a wrong literal and a wrong argument are errors
    // (one program checks both files; the runtime core is checked once).
    const bad = join(DIR, 'bad.ts');
    writeFileSync(bad, "import { config, type small_llamaModel } from './small_llama.ts';\nconst v: 321 = config.vocab;\nexport const f = (m: small_llamaModel) => m.step('one');\n");
    const all = typeCheck([moduleFile, use, bad]);
    expect(all.filter((e) => !e.startsWith(bad))).toEqual([]);
    const errors = all.filter((e) => e.startsWith(bad));
    expect(errors).toHaveLength(2);
    expect(errors.some((e) => /Type '320' is not assignable to type '321'/.test(e))).toBe(true);
    expect(errors.some((e) => /'string' is not assignable to parameter of type 'number'/.test(e))).toBe(true);
  });

  it('matches its snapshot and imports nothing but the runtime core', async () => {
    const text = readFileSync(moduleFile, 'utf8');
    const imports = [...text.matchAll(/^import .* from "([^"]+)";$/gm)].map((m) => m[1]);
    expect(imports).toEqual(['../../runtime/embed/index.ts', '../../runtime/embed/index.ts']);
    expect(text).not.toMatch(/node:/);
    await expect(text).toMatchFileSnapshot('./__snapshots__/small_llama.ts.snap');
  });

  it('keeps user text inert: a hostile model name becomes an escaped literal and a sanitised identifier', async () => {
    const c = compileSpec(readFileSync(SMALL_SPEC, 'utf8'), SMALL_SPEC);
    const hostile = 'x"; */ `${globalThis.pwned = 1}` \n\u2028 import("fs") //';
    const program = { ...c.program!, model: { ...c.program!.model, name: hostile } };
    const m = emitTsModule({ program, kernels: renderForTargets(wgslBackend, program), source: 'evil */ name\n.infer', runtimeModule: '../../runtime/embed/index.ts' });
    expect(m.identifier).toMatch(/^[A-Za-z_][A-Za-z0-9_]*$/);
    const file = join(DIR, m.fileName);
    writeFileSync(file, m.text);
    const mod = await import(file) as { config: { name: string }; program: { model: { name: string } } };
    expect(mod.config.name).toBe(hostile);
    expect(mod.program.model.name).toBe(hostile);
    expect((globalThis as { pwned?: number }).pwned).toBeUndefined();
    expect(() => emitTsModule({ program, kernels: renderForTargets(wgslBackend, program), source: 'a.infer', runtimeModule: 'x"; process.exit(1); "' })).toThrow(/not a package or relative module path/);
  });
});

describe('the generated module decodes what infer run decodes', () => {
  const cliTokens = async (backend: string, extra: string[] = []): Promise<number[]> => {
    const r = await cli('run', SMALL_SPEC, '--weights', gguf, '--backend', backend, '--tokens', PROMPT.join(','), '--max-tokens', '24', '--ignore-eos', '--json', ...extra);
    expect(r.code, r.err).toBe(0);
    return JSON.parse(r.out).tokens;
  };

  it('greedy and seeded sampling, from an ArrayBuffer, a Blob, a URL and a node path', async () => {
    const { createModel } = await import(moduleFile) as GeneratedModule;
    const bytes = readFileSync(gguf);
    const progress: number[] = [];
    const model = await createModel(device, bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length), { onProgress: (p) => progress.push(p.loadedBytes) });
    expect(progress.at(-1)).toBe(bytes.length);
    const decode = async (m: typeof model, o: { temperature?: number; seed?: number; topK?: number } = {}) => {
      const ids: number[] = [];
      for await (const t of m.generate(PROMPT, { maxTokens: 24, ignoreEos: true, ...o })) ids.push(t.id);
      return ids;
    };
    const greedy = await decode(model);
    expect(greedy).toHaveLength(24);
    expect(greedy).toEqual(await cliTokens('webgpu'));
    expect(greedy).toEqual(await cliTokens('cpu'));
    const sampled = await decode(model, { temperature: 0.8, topK: 40, seed: 5 });
    expect(sampled).toEqual(await cliTokens('webgpu', ['--temperature', '0.8', '--top-k', '40', '--seed', '5']));
    model.dispose();

    const server: Server = createServer((_, res) => { res.setHeader('content-length', bytes.length); res.end(bytes); });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    try {
      const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/small.gguf`;
      for (const input of [new Blob([bytes]), url, weightsFromPath(gguf)]) {
        const seen: number[] = [];
        const m = await createModel(device, input, { onProgress: (p) => seen.push(p.loadedBytes) });
        expect(await decode(m)).toEqual(greedy);
        expect(seen.length).toBeGreaterThan(0);
        m.dispose();
      }
    } finally { server.close(); }
  });

  it('streams text through the file tokenizer as infer run --prompt does (CPU engine), and refuses bad input clearly', async () => {
    const { createModel } = await import(moduleFile) as GeneratedModule;
    const model = await createModel(device, weightsFromPath(gguf));
    expect(model.tokenizer).not.toBeNull();
    let text = '';
    const it = model.generate('t300 t301', { maxTokens: 12, ignoreEos: true });
    let r = await it.next();
    const ids: number[] = [];
    while (!r.done) { ids.push(r.value.id); text += r.value.text ?? ''; r = await it.next(); }
    expect(r.value.text).toBe(text);
    const run = await cli('run', SMALL_SPEC, '--weights', gguf, '--backend', 'cpu', '--prompt', 't300 t301', '--max-tokens', '12', '--ignore-eos', '--json');
    expect(run.code, run.err).toBe(0);
    expect(ids).toEqual(JSON.parse(run.out).tokens);
    expect(text).toBe(JSON.parse(run.out).text);
    await expect(model.prefill([320])).rejects.toThrow(/token 320 is outside the vocabulary of 320/);
    await expect(model.generate([1], { maxTokens: -1 }).next()).rejects.toThrow(/maxTokens must be an integer >= 0/);
    model.dispose();
    await expect(model.step(1)).rejects.toThrow(/disposed/);
    await expect(createModel(device, new Uint8Array([1, 2, 3, 4]))).rejects.toThrow(/not a GGUF file/);
    await expect(createModel(device, 'random')).rejects.toThrow(/binds its weights from a file/);
  });
});
