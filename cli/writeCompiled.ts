// The one place compiled output is written: each kernel variant's source as a file named
// by its key, and manifest.json (the Program and, per kernel, its variants' files, entry
// points, bindings, workgroup and grid). Keys are [A-Za-z0-9_.-] only (the backends check),
// so no user text reaches a file name.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend, RenderedKernel } from '../backends/backend.ts';
import type { KernelSpec } from '../program/kernels.ts';
import type { Program } from '../program/program.ts';

export interface WrittenKernel { readonly key: string; readonly spec: KernelSpec; readonly variants: readonly { readonly file: string; readonly rendered: RenderedKernel }[] }
export interface WrittenOutput { readonly files: number; readonly kernels: number; readonly written: readonly WrittenKernel[] }

export function writeCompiled(out: string, source: string, program: Program, backend: Backend, ext: string): WrittenOutput {
  mkdirSync(out, { recursive: true });
  const used = new Set<string>();
  const written: WrittenKernel[] = [];
  const kernels = program.kernels.map(({ key, spec }) => {
    const files: { file: string; rendered: RenderedKernel }[] = [];
    const variants = backend.render(key, spec).map((r) => {
      // Variant keys are unique in practice; the token bound disambiguates if a backend reuses one.
      let fileName = `${r.key}.${ext}`;
      if (used.has(fileName)) fileName = `${r.key}.t${r.minTokens}.${ext}`;
      used.add(fileName);
      writeFileSync(join(out, fileName), r.source);
      files.push({ file: fileName, rendered: r });
      return { file: fileName, entry: r.entry, bindings: r.bindings, workgroup: r.workgroup, grid: r.grid, minTokens: r.minTokens };
    });
    written.push({ key, spec, variants: files });
    return { key, spec, variants };
  });
  const manifest = { format: 'infer-manifest/1', target: backend.name, source, program, kernels };
  writeFileSync(join(out, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  return { files: kernels.reduce((n, k) => n + k.variants.length, 0), kernels: kernels.length, written };
}

/**
 * `--target ts`: the model as one TypeScript module (backends/ts), its kernels rendered by
 * `wgsl` for both tuning targets. ts-morph loads only here, so other commands never pay for it.
 */
export async function writeTsModule(out: string, source: string, program: Program, wgsl: Backend, runtimeModule?: string): Promise<{ file: string; bytes: number }> {
  const { emitTsModule } = await import('../backends/ts/emitModule.ts');
  const { renderForTargets } = await import('../backends/ts/renderTargets.ts');
  const m = emitTsModule({ program, kernels: renderForTargets(wgsl, program), source, ...(runtimeModule ? { runtimeModule } : {}) });
  mkdirSync(out, { recursive: true });
  const file = join(out, m.fileName);
  writeFileSync(file, m.text);
  return { file, bytes: Buffer.byteLength(m.text) };
}
