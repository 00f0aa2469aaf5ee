// `infer compile --target ts`: one TypeScript module per model, built as a syntax tree with
// ts-morph (declarations as structures, values as factory-built literals; see literal.ts):
//
//   config        the model's sizes and evaluated config constants, `as const` (typed literals)
//   program       the Program (the JSON contract of program/), typed
//   kernels       every kernel rendered to WGSL for both tuning targets (GPU, software adapter)
//   createModel   (device, weights, options?) -> InferModel<Config>: prefill, step, generate, dispose
//
// The module imports only the browser-safe runtime core (`infer-compiler/runtime` by default),
// so bundlers take it as it is. User text (the model's name, the spec's file name) reaches it
// only as escaped string literals or sanitised identifiers.
import { Project, VariableDeclarationKind, type SourceFile } from 'ts-morph';
import type { Program } from '../../program/program.ts';
import type { RenderedKernel } from '../backend.ts';
import { literal, printNode, sanitizeIdentifier } from './literal.ts';

export const RUNTIME_MODULE = 'infer-compiler/runtime';

export interface EmitInput {
  readonly program: Program;
  /** Rendered variants by kernel key, per tuning target. */
  readonly kernels: { readonly gpu: ReadonlyMap<string, readonly RenderedKernel[]>; readonly cpu: ReadonlyMap<string, readonly RenderedKernel[]> };
  /** The spec's file name, for the header comment (sanitised there). */
  readonly source: string;
  /** Where the runtime core is imported from (tests point it at the sources). */
  readonly runtimeModule?: string;
}

export interface EmittedModule {
  /** `<model>.ts`, from the sanitised model name. */
  readonly fileName: string;
  /** The model's name as an identifier (the `<Name>Model` type). */
  readonly identifier: string;
  readonly text: string;
}

/** The model's typed config: sizes the runtime reads, and every evaluated config constant. */
function configOf(p: Program): Record<string, unknown> {
  const m = p.model;
  return {
    name: m.name, vocab: m.vocab, dim: m.dim, layers: m.layers, heads: m.heads, kvHeads: m.kvHeads, headDim: m.headDim,
    maxContext: m.maxContext, eos: m.eos, kv: m.kv, weights: m.weights, constants: m.constants,
    params: p.params.length, parameterCount: p.params.reduce((s, q) => s + q.shape.reduce((a, b) => a * b, 1), 0),
  };
}

const plain = (m: ReadonlyMap<string, readonly RenderedKernel[]>): Record<string, readonly RenderedKernel[]> =>
  Object.fromEntries([...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

/** A module specifier fit to print as is: a package path or a relative path, nothing that could end the string. */
const SPECIFIER = /^(?:@[A-Za-z0-9._-]+\/)?[A-Za-z0-9._-]+(?:\/[A-Za-z0-9._-]+)*$|^\.{1,2}(?:\/[A-Za-z0-9._-]+)+$/;

export class EmitError extends Error {}

export function emitTsModule(input: EmitInput): EmittedModule {
  const { program } = input;
  const runtime = input.runtimeModule ?? RUNTIME_MODULE;
  if (!SPECIFIER.test(runtime)) throw new EmitError(`runtime import '${runtime}' is not a package or relative module path ([A-Za-z0-9._-] segments)`);
  const id = sanitizeIdentifier(program.model.name);
  const fileName = `${id.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase()}.ts`;
  const project = new Project({ useInMemoryFileSystem: true, compilerOptions: { strict: true } });
  const file = project.createSourceFile(fileName, '', { overwrite: true });
  const source = input.source.split(/[\\/]/).pop()!.replace(/[^A-Za-z0-9._-]/g, '_');
  file.addImportDeclaration({
    moduleSpecifier: runtime,
    namedImports: ['createModelFromParts'],
  });
  file.addImportDeclaration({
    moduleSpecifier: runtime, isTypeOnly: true,
    namedImports: ['CreateModelOptions', 'EmbeddedKernels', 'InferModel', 'Program', 'WeightsInput'],
  });
  addConst(file, 'config', `${printNode(literal(configOf(program), 'config'))} as const`, undefined, 'The model\'s sizes and config constants, as typed literals.');
  file.addTypeAlias({ isExported: true, name: 'Config', type: 'typeof config' });
  file.addTypeAlias({ isExported: true, name: `${id}Model`, type: 'InferModel<Config>', docs: ['The loaded model: prefill, step, generate, dispose.'] });
  addConst(file, 'program', printNode(literal(program, 'program')), 'Program', 'The compiled Program: buffers, kernels and the dispatches of one forward step.');
  addConst(file, 'kernels', printNode(literal({ gpu: plain(input.kernels.gpu), cpu: plain(input.kernels.cpu) }, 'kernels')), 'EmbeddedKernels',
    'Every kernel as WGSL, per tuning target (the runtime picks by adapter: a GPU, or a software one).');
  file.addFunction({
    isExported: true, name: 'createModel',
    docs: ['Loads the weights (progress through options.onProgress), uploads them to `device` and compiles the kernels.'],
    parameters: [{ name: 'device', type: 'GPUDevice' }, { name: 'weights', type: 'WeightsInput' }, { name: 'options', type: 'CreateModelOptions', hasQuestionToken: true }],
    returnType: `Promise<${id}Model>`,
    statements: ['return createModelFromParts({ config, program, kernels }, device, weights, options);'],
  });
  file.insertStatements(0, [
    `// Generated by \`infer compile --target ts\` from ${source} (model ${id}). Do not edit: regenerate it.`,
    '// Imports only the browser-safe runtime core; pass a GPUDevice (navigator.gpu in a browser, nodeDevice() from',
    "// 'infer-compiler/runtime/node' in node) and weights (a URL, File/Blob, ArrayBuffer, weightsFromPath(...) or 'random').",
  ]);
  file.formatText({ indentSize: 2, convertTabsToSpaces: true, semicolons: 'insert' as never });
  return { fileName, identifier: id, text: file.getFullText() };
}

function addConst(file: SourceFile, name: string, initializer: string, type: string | undefined, doc: string): void {
  file.addVariableStatement({
    isExported: true, declarationKind: VariableDeclarationKind.Const, docs: [doc],
    declarations: [{ name, initializer, ...(type ? { type } : {}) }],
  });
}
