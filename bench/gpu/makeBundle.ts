// Writes the bundle bench/gpu/run.py needs on a GPU machine that has no Node: for every
// example and for bench/gpu/llama-1b.infer, the directory `infer compile --target cuda`
// writes (kernels, host runner, build.sh), and expected.json with the tokens the CPU engine
// (the float64 interpreter) generates for each case the GPU will run. The 1B model's tokens
// take the interpreter minutes and ~10 GB here, so they are computed only with --expected-1b;
// without them run.py only builds and times it.
//   node --import tsx bench/gpu/makeBundle.ts [--out DIR] [--expected-1b]
// then copy DIR (default bench/gpu/bundle) to the GPU machine and run `python3 DIR/run.py`.
import { copyFileSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import { main } from '../../cli/main.ts';

const { values: flags } = parseArgs({ options: { out: { type: 'string' }, 'expected-1b': { type: 'boolean' } } });
const OUT = flags.out ?? 'bench/gpu/bundle';
const BIG = 'bench/gpu/llama-1b.infer';

interface Case { readonly name: string; readonly args: readonly string[] }
const CASES: readonly Case[] = [
  { name: 'greedy-32', args: ['--tokens', '1,2,3', '--max-tokens', '32', '--ignore-eos'] },
  { name: 'batch-3', args: ['--tokens', '1,2,3', '--tokens', '5,6,7,8,9,10,11', '--tokens', '4', '--max-tokens', '12', '--ignore-eos'] },
  { name: 'sampled', args: ['--tokens', '7,8', '--max-tokens', '12', '--temperature', '0.9', '--top-k', '40', '--top-p', '0.95', '--seed', '3', '--ignore-eos'] },
];
const BIG_CASES: readonly Case[] = [{ name: 'greedy-8', args: ['--tokens', '1,2,3', '--max-tokens', '8', '--ignore-eos'] }];

async function cli(...argv: string[]): Promise<string> {
  let out = '', err = '';
  const code = await main(argv, { out: (t) => { out += t; }, err: (t) => { err += t; } });
  if (code !== 0) throw new Error(`infer ${argv.join(' ')} exited ${code}: ${err}`);
  return out;
}

/** The tokens of a --json run as a list of sequences. */
function sequences(json: string): number[][] {
  const r = JSON.parse(json) as { tokens?: number[]; sequences?: { tokens: number[] }[] };
  return r.sequences ? r.sequences.map((s) => s.tokens) : [r.tokens!];
}

rmSync(OUT, { recursive: true, force: true });
mkdirSync(join(OUT, 'models'), { recursive: true });
const specs = [...readdirSync('examples').filter((f) => f.endsWith('.infer')).sort().map((f) => join('examples', f)), BIG];
const models: Record<string, unknown> = {};
for (const spec of specs) {
  const name = basename(spec, '.infer');
  process.stderr.write(`${name}: compiling\n`);
  await cli('compile', spec, '--target', 'cuda', '--out', join(OUT, 'models', name));
  const big = spec === BIG;
  const cases = big ? (flags['expected-1b'] ? BIG_CASES : []) : CASES;
  const expected = [];
  for (const c of cases) {
    process.stderr.write(`${name}: ${c.name} on the CPU engine\n`);
    expected.push({ ...c, tokens: sequences(await cli('run', spec, '--backend', 'cpu', '--json', '--no-speculative', ...c.args)) });
  }
  models[name] = { cases: expected, bench: big ? { prompt: 512, decode: 64 } : { prompt: 128, decode: 32 } };
}
const expected = { models, sanitize: { model: 'tiny-llama', args: ['--tokens', '1,2,3', '--max-tokens', '3'] } };
writeFileSync(join(OUT, 'expected.json'), JSON.stringify(expected, null, 1) + '\n');
copyFileSync(new URL('./run.py', import.meta.url), join(OUT, 'run.py'));
process.stderr.write(`wrote ${OUT}: ${specs.length} models; on the GPU machine run: python3 ${OUT}/run.py\n`);
