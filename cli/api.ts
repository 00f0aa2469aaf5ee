// infer-compiler (the package's main entry): the compiler as a library. A spec's text in,
// its Program and diagnostics out; the Program's WGSL kernels; and the TypeScript module
// `infer compile --target ts` writes, as text or as a file. Node-only (the WGSL templates
// are read from disk); the browser-safe runtime is infer-compiler/runtime.
import type { Program } from '../program/program.ts';
import { backendEntry } from '../backends/registry.ts';
import type { Backend } from '../backends/backend.ts';
import { emitTsModule, type EmittedModule } from '../backends/ts/emitModule.ts';
import { renderForTargets } from '../backends/ts/renderTargets.ts';
import { compileSpec, type CompileOptions, type Compiled } from '../compiler/compile.ts';
import { formatDiagnostics } from '../dsl/diagnostics.ts';
import { writeTsModule } from './writeCompiled.ts';

export { compileSpec, formatDiagnostics, writeTsModule };
export type { Compiled, CompileOptions, EmittedModule, Program };

/** The WGSL backend (renders every kernel kind). */
export function wgsl(): Promise<Backend> {
  return backendEntry('wgsl').load();
}

export class SpecError extends Error {}

/** A spec's TypeScript module (what `infer compile --target ts` writes); SpecError with file:line:col messages on a bad spec. */
export async function emitModule(text: string, file: string, o: CompileOptions & { runtimeModule?: string } = {}): Promise<EmittedModule> {
  const { runtimeModule, ...options } = o;
  const c = compileSpec(text, file, options);
  if (c.diagnostics.length > 0 || !c.program) throw new SpecError(formatDiagnostics(c.diagnostics, text));
  return emitTsModule({ program: c.program, kernels: renderForTargets(await wgsl(), c.program), source: file, ...(runtimeModule ? { runtimeModule } : {}) });
}
