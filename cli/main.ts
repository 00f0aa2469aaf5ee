// The `infer` command line: check, compile and run .infer specs; import GGUF files. bin/infer.mjs
// calls runCli (from dist/ when built, else through tsx). Every failure becomes a
// one-line message and exit status 1 (2 for targets not built yet); stack traces
// only with INFER_DEBUG=1. With `run --json`, stdout carries exactly one JSON object.
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { formatDiagnostics, type Diagnostic } from '../dsl/index.ts';
import { compileSpec, type Compiled } from '../compiler/compile.ts';
import { printGraph } from '../compiler/ir/print.ts';
import { memorySummary, printMemoryPlan } from '../compiler/planMemory.ts';
import { backendEntry, missingKinds } from '../backends/registry.ts';
import { writeCompiled, writeTsModule } from './writeCompiled.ts';
import { FUSION_KEYS, parseNoFuse } from '../compiler/pipeline.ts';
import type { Program } from '../program/program.ts';
import { deviceWeightType } from '../program/quant.ts';
import { runCommand, type RunFlags } from './run.ts';
import { importCommand, type ImportFlags } from './import.ts';
import { SPEC_OPTIONS, SPEC_USAGE } from './speculative.ts';
import { planSpeculative, SpecPlanError, type Ready } from '../compiler/specDraft.ts';
import { didYouMean } from './args.ts';
import { paramSummary } from './outcome.ts';
import { SERVE_OPTIONS, SERVE_USAGE, type ServeFlags } from './serve/command.ts';
import { PLAN_OPTIONS, PLAN_USAGE, type PlanFlags } from './plan.ts';

/** A failure the user can fix; printed as `infer: message`, exit status `code`. */
export class CliError extends Error {
  constructor(message: string, readonly code = 1) { super(message); }
}

const COMMAND_USAGE = {
  check: `infer check SPEC
  Parses and compiles SPEC; exit 0 when clean, else exit 1 with file:line:col errors on stderr.`,
  compile: `infer compile SPEC --target wgsl|cuda|ts --out DIR [--no-fuse LIST] [--print-ir] [--weights FILE] [--runtime-import MODULE]
  Writes every kernel and manifest.json to DIR (--weights: the kernels that file's tensor types need).
  --target ts writes one TypeScript module (config, program, WGSL kernels, createModel) importing
  the runtime core from MODULE (default infer-compiler/runtime).
  --no-fuse takes a comma-separated list of fusions (${FUSION_KEYS.join(', ')}) or 'all'.`,
  run: `infer run SPEC [--weights FILE] [--backend webgpu|cpu|cuda|cuda-emu] [--tokens 1,2,3 [--tokens 4,5 ...] | --batch-file FILE]
                 [--max-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--top-logprobs N]
                 [--prompt TEXT [--prompt TEXT ...] | --prompt-file FILE]
                 [--ignore-eos] [--json] [--verbose] [--no-fuse LIST] [--kv-pages N] [--f32-weights]
${SPEC_USAGE}
  Several prompts (--tokens repeated, or --batch-file with one comma-separated prompt per line) decode as one batch.
  --prompt / --prompt-file (one prompt per line, or a .json array of strings) give text, tokenised by the weight file's
  tokenizer (GGUF metadata, or tokenizer.json beside a safetensors checkpoint); the reply streams as text, --json adds
  "text", and generation stops at the vocabulary's end-of-generation ids (eos, eot).
  Token ids and seeds are decimal integers (a seed in 0..4294967295).
  --weights takes a .gguf file or a Hugging Face llama checkpoint (.safetensors, or a sharded one's index or directory);
  f16 / bf16 (as f16) and q8_0 / q4_0 / q4_K / q5_K / q6_K GGUF matrices stay compact on WebGPU unless
  --f32-weights (widen everything to f32 at load).
  --verbose prints every stat (--json always carries them all). Ctrl-C stops generating and prints what there is.
  Exit status: 0 every sequence ended by --max-tokens or eos; 3 some sequence was cut short (KV pool full,
  context full, prompt too large); 1 an error; 130 interrupted.`,
  tokenize: `infer tokenize --weights FILE (--text TEXT | --text-file FILE.json) [--special] [--json]
  Token ids of TEXT (one line, space-separated), or of each string of a JSON array (one line each);
  --json prints {"ids": [...]} or {"results": [{"ids": [...]}, ...]}. --special adds BOS/EOS and parses special-token texts.`,
  detokenize: `infer detokenize --weights FILE --ids 1,2,3 [--special] [--json]
  The text of the ids (--special renders control tokens); --json prints {"text": "..."}.`,
  chat: `infer chat SPEC --weights FILE [--backend webgpu|cpu|cuda|cuda-emu] [--system TEXT] [--max-tokens N] [--temperature T]
                  [--top-k K] [--top-p P] [--seed S] [--f32-weights]
  A terminal chat through the file's chat template; the conversation stays in the KV cache across turns.
  Ctrl-C stops a reply; an empty line or /exit ends the chat.`,
  import: `infer import FILE.gguf|CHECKPOINT [-o SPEC] [--max-context N]
  Writes a spec for a GGUF file (llama dense or Mixtral-style MoE, qwen2, qwen3, qwen2moe, qwen3moe,
  gemma2, phi3) or a Hugging Face checkpoint (its directory with config.json and *.safetensors:
  Llama, Mistral, Mixtral, Qwen2, Qwen3, Qwen2-MoE, Qwen3-MoE, Gemma 2, Phi-3) to SPEC, or stdout.`,
  serve: SERVE_USAGE,
  plan: PLAN_USAGE,
} as const;

/** A command's synopsis: its usage up to the first line of prose (option lines start with '['). */
const synopsis = (u: string): string[] => { const [first, ...rest] = u.split('\n'); const n = rest.findIndex((l) => !/^\s+\[/.test(l)); return [first, ...rest.slice(0, n < 0 ? rest.length : n)]; };

const USAGE = `usage:
${Object.values(COMMAND_USAGE).flatMap(synopsis).map((l) => '  ' + l).join('\n')}
  infer --version
Run 'infer COMMAND --help' for a command's options.`;

const HELP = { help: { type: 'boolean', short: 'h' } } as const;

const OPTIONS = {
  check: { ...HELP },
  import: { ...HELP, output: { type: 'string', short: 'o' }, 'max-context': { type: 'string' } },
  compile: { ...HELP, target: { type: 'string' }, out: { type: 'string' }, 'no-fuse': { type: 'string' }, 'print-ir': { type: 'boolean' }, weights: { type: 'string' }, 'runtime-import': { type: 'string' } },
  run: {
    ...HELP,
    weights: { type: 'string' }, backend: { type: 'string' }, tokens: { type: 'string', multiple: true }, 'batch-file': { type: 'string' },
    'kv-pages': { type: 'string' }, 'max-tokens': { type: 'string' },
    temperature: { type: 'string' }, 'top-k': { type: 'string' }, 'top-p': { type: 'string' }, seed: { type: 'string' },
    'top-logprobs': { type: 'string' }, 'ignore-eos': { type: 'boolean' }, json: { type: 'boolean' }, verbose: { type: 'boolean', short: 'v' },
    'no-fuse': { type: 'string' }, 'f32-weights': { type: 'boolean' },
    prompt: { type: 'string', multiple: true }, 'prompt-file': { type: 'string' },
    ...SPEC_OPTIONS,
  },
  tokenize: { ...HELP, weights: { type: 'string' }, text: { type: 'string' }, 'text-file': { type: 'string' }, special: { type: 'boolean' }, json: { type: 'boolean' } },
  detokenize: { ...HELP, weights: { type: 'string' }, ids: { type: 'string' }, special: { type: 'boolean' }, json: { type: 'boolean' } },
  chat: {
    ...HELP, weights: { type: 'string' }, backend: { type: 'string' }, system: { type: 'string' }, 'max-tokens': { type: 'string' },
    temperature: { type: 'string' }, 'top-k': { type: 'string' }, 'top-p': { type: 'string' }, seed: { type: 'string' }, 'f32-weights': { type: 'boolean' },
  },
  serve: { ...HELP, ...SERVE_OPTIONS },
  plan: { ...HELP, ...PLAN_OPTIONS },
} satisfies Record<string, ParseArgsConfig['options']>;

type Command = keyof typeof OPTIONS;

export interface Io { out: (text: string) => void; err: (text: string) => void }

const stdio: Io = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

/** Runs one CLI invocation; returns the exit status. */
export async function main(argv: readonly string[], io: Io = stdio): Promise<number> {
  try {
    const [cmd, ...rest] = argv;
    if (cmd === undefined) { io.err(USAGE + '\n'); return 1; }
    if (cmd === '--help' || cmd === '-h' || cmd === 'help') {
      const topic = rest[0];
      if (topic !== undefined && !(topic in OPTIONS)) throw new CliError(`no command '${topic}'${didYouMean(topic, Object.keys(OPTIONS))}\n${USAGE}`);
      io.out((topic !== undefined ? `usage: ${COMMAND_USAGE[topic as Command]}` : USAGE) + '\n');
      return 0;
    }
    if (cmd === '--version' || cmd === '-V') { io.out(`${packageInfo().name} ${packageInfo().version}\n`); return 0; }
    if (!(cmd in OPTIONS)) throw new CliError(`unknown command '${cmd}'${didYouMean(cmd, [...Object.keys(OPTIONS), '--help', '--version'])}\n${USAGE}`);
    const { values, positionals } = parse(cmd as Command, rest);
    if (values.help) { io.out(`usage: ${COMMAND_USAGE[cmd as Command]}\n`); return 0; }
    if (cmd === 'tokenize' || cmd === 'detokenize') {
      if (positionals.length) throw new CliError(`${cmd} takes no positional argument, got '${positionals[0]}'\nusage: ${COMMAND_USAGE[cmd]}`);
      const t = await import('./text.ts');
      return (cmd === 'tokenize' ? t.tokenizeCommand : t.detokenizeCommand)(values as import('./text.ts').TokenizeFlags, io);
    }
    if (positionals.length !== 1) throw new CliError(`${cmd} takes exactly one ${cmd === 'import' ? 'GGUF file or checkpoint' : 'SPEC file'}, got ${positionals.length}\nusage: ${COMMAND_USAGE[cmd as Command]}`);
    const file = positionals[0];
    switch (cmd as Command) {
      case 'check': return check(file, io);
      case 'import': return importCommand(file, values as ImportFlags, io);
      case 'compile': return await compile(file, values as CompileFlags, io);
      case 'chat': {
        const compiled = compileOrReport(file, {}, io);
        return compiled ? await (await import('./chat.ts')).chatCommand(compiled, values as import('./chat.ts').ChatFlags, io) : 1;
      }
      case 'run': {
        const rf = values as RunFlags;
        let compiled = compileOrReport(file, { noFuse: rf['no-fuse'] }, io);
        // A file-bound spec compiles again with the file's tensor types, so f16 / bf16 and
        // block matrices stay compact on the device (schedule.ts / quantParams.ts).
        if (compiled && compiled.program.model.weights.binding === 'gguf' && rf.weights && !rf['f32-weights']) {
          const { fileWeightTypes } = await import('./weights.ts');
          const weightTypes = fileWeightTypes(rf.weights);
          if ([...weightTypes.values()].some((t) => deviceWeightType(t) !== undefined)) compiled = compileOrReport(file, { noFuse: rf['no-fuse'], weightTypes }, io);
        }
        return compiled ? await runCommand(compiled, rf, io) : 1;
      }
      case 'plan': return await (await import('./plan.ts')).planCommand(file, values as PlanFlags, io);
      case 'serve': {
        const compiled = compileOrReport(file, {}, io);
        return compiled ? await (await import('./serve/command.ts')).serveCommand(compiled, values as ServeFlags, io) : 1;
      }
    }
  } catch (e) {
    return reportError(e, io);
  }
  return 0;
}

/** package.json's name and version (read next to cli/ and next to dist/, both one level down). */
export function packageInfo(): { name: string; version: string } {
  return JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { name: string; version: string };
}

function parse(cmd: Command, args: string[]): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const r = parseArgs({ args, options: OPTIONS[cmd], allowPositionals: true, strict: true });
    return { values: r.values as Record<string, string | boolean | undefined>, positionals: r.positionals };
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    // parseArgs says "Unknown option '--tokns'..."; add the closest real flag.
    const unknown = /^Unknown option '(--?[^']+)'/.exec(msg)?.[1];
    const flags = Object.entries(OPTIONS[cmd]).flatMap(([k, o]) => ['--' + k, ...('short' in o ? ['-' + o.short] : [])]);
    const hint = unknown?.startsWith('--') ? didYouMean(unknown, flags) : '';
    // `infer plan` is scripted (--json): a bad flag exits 2, apart from failures of the model itself.
    throw new CliError(`${cmd}: ${msg.split('. To specify a positional')[0]}${hint}\nusage: ${COMMAND_USAGE[cmd]}`, cmd === 'plan' ? 2 : 1);
  }
}

export function reportError(e: unknown, io: Io): number {
  if (process.env.INFER_DEBUG === '1' && e instanceof Error) io.err(`${e.stack}\n`);
  const msg = e instanceof Error ? e.message : String(e);
  io.err(`infer: ${msg}\n`);
  return e instanceof CliError ? e.code : 1;
}

function readSpec(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CliError(`cannot read ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : (e as Error).message}`);
  }
}

/** At most MAX_DIAGNOSTICS of them (a binary file gives hundreds), then how many were left out. */
function printDiagnostics(ds: Diagnostic[], text: string, io: Io): void {
  io.err(formatDiagnostics(ds.slice(0, MAX_DIAGNOSTICS), text) + '\n');
  if (ds.length > MAX_DIAGNOSTICS) io.err(`... and ${ds.length - MAX_DIAGNOSTICS} more error${ds.length - MAX_DIAGNOSTICS === 1 ? '' : 's'}\n`);
  io.err(`${ds.length} error${ds.length === 1 ? '' : 's'}\n`);
}

export const MAX_DIAGNOSTICS = 20;

/** Compiles a spec; on diagnostics prints them and returns null. */
export function compileOrReport(file: string, o: { noFuse?: string; weightTypes?: ReadonlyMap<string, string> }, io: Io): (Compiled & { program: Program; graph: NonNullable<Compiled['graph']> }) | null {
  const text = readSpec(file);
  const noFuse = parseNoFuse(o.noFuse);
  const c = compileSpec(text, file, { noFuse, weightTypes: o.weightTypes });
  if (c.diagnostics.length > 0 || !c.program || !c.graph) {
    if (c.diagnostics.length === 0) throw new CliError(`${file}: compilation produced no program and no diagnostic (a compiler bug)`);
    printDiagnostics(c.diagnostics, text, io);
    return null;
  }
  return c as Compiled & { program: Program; graph: NonNullable<Compiled['graph']> };
}

function check(file: string, io: Io): number {
  const c = compileOrReport(file, {}, io);
  if (!c) return 1;
  const p = c.program;
  // A speculative section's draft must compile and share the vocabulary: check it here too.
  if (c.ast?.speculative) {
    try { planSpeculative(c as Ready, file, readSpec(file), {}); } catch (e) {
      if (!(e instanceof SpecPlanError)) throw e;
      io.err(e.message + '\n');
      return 1;
    }
  }
  io.err(`${file}: ok (model ${p.model.name}: ${paramSummary(p.params)}, ${p.kernels.length} kernels, ${p.steps.length} dispatches per step)\n`);
  return 0;
}

interface CompileFlags { target?: string; out?: string; 'no-fuse'?: string; 'print-ir'?: boolean; weights?: string; 'runtime-import'?: string }

async function compile(file: string, f: CompileFlags, io: Io): Promise<number> {
  if (!f.target) throw new CliError('compile needs --target wgsl|cuda|ts');
  if (!['wgsl', 'cuda', 'ts'].includes(f.target)) throw new CliError(`unknown target '${f.target}': use wgsl, cuda or ts`);
  if (!f.out) throw new CliError('compile needs --out DIR');
  // With --weights, the kernels are those `infer run` would use for that file (f16 and block matrices kept compact).
  const weightTypes = f.weights ? (await import('./weights.ts')).fileWeightTypes(f.weights) : undefined;
  const c = compileOrReport(file, { noFuse: f['no-fuse'], weightTypes }, io);
  if (!c) return 1;
  if (f['print-ir']) io.out(printGraph(c.graph) + printMemoryPlan(c.program));
  if (f.target === 'ts') {
    const w = await writeTsModule(f.out, file, c.program, await backendEntry('wgsl').load(), f['runtime-import']);
    io.err(`wrote ${w.file} (${(w.bytes / 1024).toFixed(0)} KiB: config, program, ${c.program.kernels.length} kernels as WGSL, createModel); ${memorySummary(c.program)}\n`);
    return 0;
  }
  const entry = backendEntry(f.target);
  // A backend that lacks some kernel kinds says which this program needs, and writes nothing.
  const missing = missingKinds(entry, c.program);
  if (missing.length) throw new CliError(`target ${f.target}: this version renders ${[...entry.kinds].join(', ')} kernels only; ${file} also needs ${missing.join(', ')} (use --target wgsl)`, 2);
  const w = writeCompiled(f.out, file, c.program, await entry.load(), entry.ext);
  io.err(`wrote ${w.files} .${entry.ext} files (${w.kernels} kernels) and manifest.json to ${f.out}; ${memorySummary(c.program)}\n`);
  if (f.target === 'cuda') {
    const { writeCudaRunner } = await import('./writeCudaRunner.ts');
    const n = writeCudaRunner(f.out, c.program, w.written);
    io.err(`wrote the host runner (${n} files; build it with ${f.out}/build.sh --emu or --cuda)\n`);
  }
  return 0;
}

/**
 * Runs the CLI as a process (bin/infer.mjs): exits with main's status once stdout and stderr
 * have drained (Dawn can keep the event loop alive after its last device is destroyed, and
 * a piped stderr cut at exit would lose the diagnostics' summary line).
 */
export async function runCli(args: readonly string[]): Promise<void> {
  let code: number;
  try { code = await main(args); } catch (e) { code = reportError(e, stdio); }
  await new Promise<void>((done) => process.stdout.write('', () => done()));
  await new Promise<void>((done) => process.stderr.write('', () => done()));
  process.exit(code);
}
