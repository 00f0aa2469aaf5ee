// Writes the bundle bench/gpu/run.py needs on a GPU machine that has no Node: for every
// example and for bench/gpu/llama-1b.infer, the directory `infer compile --target cuda`
// writes (kernels, host runner, build.sh), and expected.json with the tokens the CPU engine
// (the float64 interpreter) generates for each case the GPU will run (expected.ts). The 1B
// model's tokens take the interpreter minutes (2.6 min and 4.4 GB for 8 tokens on a quiet machine here), so they
// come from the committed bench/gpu/expected-1b.json, checked against the spec's SHA-256;
// --expected-1b computes them again and rewrites that file.
//   node --import tsx bench/gpu/makeBundle.ts [--out DIR] [--expected-1b]
// then copy DIR (default bench/gpu/bundle) to the GPU machine and run `python3 DIR/run.py`.
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import { main } from '../../cli/main.ts';
import { compileSpec } from '../../compiler/compile.ts';
import { hfLlamaConfig } from './hfConfig.ts';
import { cpuArgs, EXPECTED_1B, expectedCase, specSha256, type Case, type Expected1B, type ExpectedCase } from './expected.ts';

const { values: flags } = parseArgs({ options: { out: { type: 'string' }, 'expected-1b': { type: 'boolean' } } });
const OUT = flags.out ?? 'bench/gpu/bundle';
const BIG = 'bench/gpu/llama-1b.infer';

const CASES: readonly Case[] = [
  { name: 'greedy-32', args: ['--tokens', '1,2,3', '--max-tokens', '32', '--ignore-eos'] },
  { name: 'batch-3', args: ['--tokens', '1,2,3', '--tokens', '5,6,7,8,9,10,11', '--tokens', '4', '--max-tokens', '12', '--ignore-eos'] },
  { name: 'sampled', args: ['--tokens', '7,8', '--max-tokens', '12', '--temperature', '0.9', '--top-k', '40', '--top-p', '0.95', '--seed', '3', '--ignore-eos'] },
];
const BIG_CASES: readonly Case[] = [
  { name: 'greedy-32', args: ['--tokens', '1,2,3', '--max-tokens', '32', '--ignore-eos'] },
  { name: 'batch-3', args: ['--tokens', '1,2,3', '--tokens', '5,6,7,8,9,10,11', '--tokens', '4', '--max-tokens', '8', '--ignore-eos'] },
];

async function cli(...argv: string[]): Promise<string> {
  let out = '', err = '';
  const code = await main(argv, { out: (t) => { out += t; }, err: (t) => { err += t; } });
  if (code !== 0) throw new Error(`infer ${argv.join(' ')} exited ${code}: ${err}`);
  return out;
}

/** The 1B model's cases: computed (--expected-1b, then saved) or read from the committed file, which must match the spec. */
async function bigCases(): Promise<ExpectedCase[]> {
  if (flags['expected-1b']) {
    const cases: ExpectedCase[] = [];
    for (const c of BIG_CASES) {
      process.stderr.write(`${BIG}: ${c.name} on the CPU engine (minutes)\n`);
      cases.push(expectedCase(c, await cli(...cpuArgs(BIG, c))));
    }
    const file: Expected1B = { spec: BIG, spec_sha256: specSha256(BIG), engine: 'cpu', cases };
    writeFileSync(EXPECTED_1B, JSON.stringify(file) + '\n');
    return cases;
  }
  const file = JSON.parse(readFileSync(EXPECTED_1B, 'utf8')) as Expected1B;
  if (file.spec_sha256 !== specSha256(BIG)) throw new Error(`${EXPECTED_1B} was computed for another version of ${BIG}: run with --expected-1b to compute it again`);
  return file.cases;
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
  if (big) {
    // run.py's PyTorch side: config.json here, the weights from `runner --write-hf` on the GPU machine.
    mkdirSync(join(OUT, 'models', name, 'hf'), { recursive: true });
    writeFileSync(join(OUT, 'models', name, 'hf', 'config.json'), JSON.stringify(hfLlamaConfig(compileSpec(readFileSync(spec, 'utf8'), spec).program!), null, 1) + '\n');
  }
  const expected: ExpectedCase[] = big ? await bigCases() : [];
  for (const c of big ? [] : CASES) {
    process.stderr.write(`${name}: ${c.name} on the CPU engine\n`);
    expected.push(expectedCase(c, await cli(...cpuArgs(spec, c))));
  }
  models[name] = { cases: expected, bench: big ? { prompt: 512, decode: 64 } : { prompt: 128, decode: 32 }, ...(big ? { big: true } : {}) };
}
const expected = { models, sanitize: { model: 'tiny-llama', args: ['--tokens', '1,2,3', '--max-tokens', '3'] } };
writeFileSync(join(OUT, 'expected.json'), JSON.stringify(expected, null, 1) + '\n');
copyFileSync(new URL('./run.py', import.meta.url), join(OUT, 'run.py'));
process.stderr.write(`wrote ${OUT}: ${specs.length} models; on the GPU machine run: python3 ${OUT}/run.py\n`);
