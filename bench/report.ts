// What the benchmark drivers share: a spec compiled fused and with every fusion off, and
// what every driver does at its ends: write its table and data as
// bench/results/<name>.{md,json} (the markdown also to stdout), and turn a failure into
// one line on stderr and exit 1 (INFER_DEBUG=1 adds the stack).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { compileSpec } from '../compiler/compile.ts';
import { FUSION_KEYS } from '../compiler/pipeline.ts';

export function writeResults(name: string, data: unknown, md: string): void {
  mkdirSync('bench/results', { recursive: true });
  writeFileSync(`bench/results/${name}.json`, JSON.stringify(data, null, 2) + '\n');
  writeFileSync(`bench/results/${name}.md`, md.endsWith('\n') ? md : md + '\n');
  console.log(md);
}

export function runBench(name: string, main: () => Promise<void>): void {
  main().then(() => process.exit(0), (e: unknown) => {
    console.error(`bench ${name} failed: ${e instanceof Error ? e.message : String(e)}`);
    if (process.env.INFER_DEBUG) console.error(e);
    process.exit(1);
  });
}

/** The spec fused and unfused (--no-fuse all), and the seed its random weights bind. */
export function fusedAndUnfused(spec: string) {
  const text = readFileSync(spec, 'utf8');
  const fused = compileSpec(text, spec);
  const unfused = compileSpec(text, spec, { noFuse: new Set(FUSION_KEYS) });
  if (!fused.program || !unfused.program || !fused.graph) throw new Error(`${spec} does not compile`);
  const m = fused.program.model;
  return { fused: { program: fused.program, graph: fused.graph }, unfused: { program: unfused.program }, model: m, seed: m.weights.binding === 'random' ? m.weights.seed : 0 };
}
