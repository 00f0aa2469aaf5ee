// Hugging Face checkpoints of each family `infer import` reads, against the GGUF file
// llama.cpp's converter would make of them (test/fixtures/hfFamilies.ts writes both from
// one seed): `infer import CHECKPOINT` must write the GGUF import's spec, the loader must
// produce the GGUF file's weights bit for bit, and so the CPU engine's logits are equal.
// The GGUF side is what test/agreement/families.test.ts checks against llama.cpp, so this
// chains the HF path to that reference. A loader that forgets a conversion (Gemma's 1 + w
// norms, llama's q/k row order) must fail the comparison.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { importHf } from '../../cli/importHf.ts';
import { importGguf } from '../../cli/importSpec.ts';
import { main } from '../../cli/main.ts';
import { compileSpec } from '../../compiler/compile.ts';
import { CpuEngine } from '../../runtime/cpu/engine.ts';
import type { WeightSource } from '../../program/weights.ts';
import { wgslBackend } from '../../backends/wgsl/render.ts';
import { createGpuDevice } from '../../runtime/webgpu/device.ts';
import { WebGpuEngine } from '../../runtime/webgpu/engine.ts';
import { GgufWeights } from '../../runtime/weights/gguf.ts';
import { SafetensorsWeights } from '../../runtime/weights/hfLlama.ts';
import { HF_FAMILIES, type HfFamily } from '../../runtime/weights/hfNames.ts';
import { writeHfTwins, type HfCase } from '../fixtures/hfFamilies.ts';

const dir = mkdtempSync(join(tmpdir(), 'infer-hf-families-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const base = { vocab: 300, layers: 2, ctx: 64 } as const;
const CASES: HfCase[] = [
  { ...base, label: 'Mistral GQA, window 4, 2 shards', arch: 'llama', hfArch: 'MistralForCausalLM', dim: 64, heads: 4, kvHeads: 2, ffn: 96, tied: false, seed: 61, window: 4, shards: 2 },
  { ...base, label: 'Mixtral 4 experts top-2', arch: 'llama', hfArch: 'MixtralForCausalLM', dim: 32, heads: 4, kvHeads: 1, ffn: 24, experts: 4, expertsUsed: 2, tied: false, seed: 62 },
  { ...base, label: 'Qwen2 GQA tied, bf16', arch: 'qwen2', hfArch: 'Qwen2ForCausalLM', dim: 64, heads: 4, kvHeads: 2, ffn: 128, tied: true, seed: 63, theta: 1000000, eps: 1e-6, bf16: true },
  { ...base, label: 'Qwen3 head_dim 16', arch: 'qwen3', hfArch: 'Qwen3ForCausalLM', dim: 48, heads: 4, kvHeads: 2, headDim: 16, ffn: 96, tied: false, seed: 64, theta: 1000000, eps: 1e-6 },
  { ...base, label: 'Gemma 2 window 4, 3 shards', arch: 'gemma2', hfArch: 'Gemma2ForCausalLM', dim: 64, heads: 4, kvHeads: 2, ffn: 128, tied: true, seed: 65, window: 4, attnSoftcap: 2, finalSoftcap: 5, shards: 3 },
  { ...base, label: 'Gemma 2 head_dim 32 (query_pre_attn_scalar = head_dim)', arch: 'gemma2', hfArch: 'Gemma2ForCausalLM', dim: 48, layers: 3, heads: 2, kvHeads: 1, headDim: 32, ffn: 96, tied: true, seed: 66, window: 16, attnSoftcap: 2, finalSoftcap: 5 },
  { ...base, label: 'Phi-3 fused qkv and gate/up', arch: 'phi3', hfArch: 'Phi3ForCausalLM', dim: 64, heads: 4, kvHeads: 2, ffn: 96, tied: false, seed: 67, bf16: true },
  { ...base, label: 'Qwen2-MoE 4 experts top-2 + shared', arch: 'qwen2moe', hfArch: 'Qwen2MoeForCausalLM', dim: 64, heads: 4, kvHeads: 2, ffn: 32, sharedFfn: 48, experts: 4, expertsUsed: 2, tied: false, seed: 68 },
  { ...base, label: 'Qwen3-MoE 8 experts top-2', arch: 'qwen3moe', hfArch: 'Qwen3MoeForCausalLM', dim: 64, heads: 4, kvHeads: 2, ffn: 32, experts: 8, expertsUsed: 2, tied: false, seed: 69 },
];

/** Longer than every window above, so the windows matter. */
const prompt = Int32Array.from({ length: 20 }, (_, i) => (i * 37 + 5) % 300);
const positions = Int32Array.from(prompt, (_, i) => i);

const paths = (c: HfCase) => {
  const slug = c.label.replace(/[^A-Za-z0-9]+/g, '_');
  return { hf: join(dir, slug), gguf: join(dir, `${slug}.gguf`) };
};
/** A spec without its comments and model name (which say where it came from). */
const body = (spec: string) => spec.slice(spec.indexOf('\n  config {')).split('\n').filter((l) => !l.trim().startsWith('#')).join('\n');

async function logits(spec: string, weights: (params: ReturnType<typeof compile>['program']['params']) => WeightSource): Promise<Float32Array> {
  const { graph, program } = compile(spec);
  const e = new CpuEngine(graph, weights(program.params), program);
  try { return Float32Array.from(await e.forward(prompt, positions)); } finally { e.dispose(); }
}
function compile(spec: string) {
  const c = compileSpec(spec, 'imported.infer');
  if (!c.graph || !c.program) throw new Error(c.diagnostics.map((d) => d.message).join('; '));
  return { graph: c.graph, program: c.program };
}
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

describe('a Hugging Face checkpoint imports and runs as the GGUF file converted from it', () => {
  for (const c of CASES) {
    it(c.label, async () => {
      const p = paths(c);
      writeHfTwins(p.hf, p.gguf, c);
      const fromHf = importHf(p.hf), fromGguf = importGguf(p.gguf);
      expect(body(fromHf)).toBe(body(fromGguf));
      const { program } = compile(fromHf);
      const g = GgufWeights.load(p.gguf, program.params);
      const s = SafetensorsWeights.load(p.hf, program.params, { heads: c.heads, kvHeads: c.kvHeads });
      for (const param of program.params) expect(s.get(param.name), param.name).toEqual(g.get(param.name));
      const a = await logits(fromHf, () => s), b = await logits(fromGguf, () => g);
      expect(a.length).toBe(prompt.length * c.vocab);
      expect(Array.from(a)).toEqual(Array.from(b));
    }, 30_000);
  }
});

/** Every family over drawn sizes: head counts and sizes (the q/k reordering), expert counts (the stacking), dtypes, shards, tying. */
const drawnCase = fc.record({
  family: fc.constantFrom(...CASES.map((c) => c.label)),
  kvHeads: fc.integer({ min: 1, max: 2 }), group: fc.integer({ min: 1, max: 3 }), headDim: fc.constantFrom(4, 8, 12),
  layers: fc.integer({ min: 1, max: 3 }), ffn: fc.integer({ min: 1, max: 5 }).map((n) => 8 * n),
  experts: fc.integer({ min: 2, max: 5 }), used: fc.integer({ min: 1, max: 2 }), window: fc.integer({ min: 0, max: 6 }),
  tied: fc.boolean(), bf16: fc.boolean(), shards: fc.integer({ min: 1, max: 3 }), seed: fc.integer({ min: 0, max: 1000 }),
});

it('over drawn sizes of every family, the two imports agree and the weights load bit for bit', () => {
  let n = 0;
  fc.assert(fc.property(drawnCase, (d) => {
    const like = CASES.find((c) => c.label === d.family)!;
    const heads = d.kvHeads * d.group, dim = heads * d.headDim;
    const c: HfCase = {
      ...like, label: `drawn ${n}`, layers: d.layers, heads, kvHeads: d.kvHeads, dim, headDim: undefined, ffn: d.ffn, seed: d.seed, bf16: d.bf16, shards: d.shards,
      tied: like.arch === 'gemma2' || d.tied, window: like.window === undefined ? undefined : d.window || like.window,
      ...(like.experts ? { experts: d.experts, expertsUsed: Math.min(d.used, d.experts) } : {}),
    };
    const p = { hf: join(dir, `drawn${n}`), gguf: join(dir, `drawn${n}.gguf`) };
    n++;
    writeHfTwins(p.hf, p.gguf, c);
    const fromHf = importHf(p.hf);
    expect(body(fromHf)).toBe(body(importGguf(p.gguf)));
    const { program } = compile(fromHf);
    const g = GgufWeights.load(p.gguf, program.params);
    const s = SafetensorsWeights.load(p.hf, program.params, { heads, kvHeads: d.kvHeads });
    for (const param of program.params) expect(s.get(param.name), param.name).toEqual(g.get(param.name));
    rmSync(p.hf, { recursive: true, force: true });
  }), { numRuns: 25 });
}, 60_000);

describe('a loader that forgets a conversion fails the comparison', () => {
  const MISTAKES: { label: string; what: string; family: (f: HfFamily) => HfFamily }[] = [
    { label: 'Gemma 2 window 4, 3 shards', what: "Gemma's norms read as w instead of 1 + w", family: (f) => ({ ...f, normPlusOne: false }) },
    { label: 'Mistral GQA, window 4, 2 shards', what: "llama's q/k rows left in HF's rotate-half order", family: (f) => ({ ...f, permuteQK: false }) },
  ];
  for (const m of MISTAKES) {
    it(`${m.label}: ${m.what}`, async () => {
      const c = CASES.find((x) => x.label === m.label)!;
      const p = paths(c);
      writeHfTwins(p.hf, p.gguf, c);
      const spec = importGguf(p.gguf);
      const family = m.family(HF_FAMILIES[c.hfArch]);
      const right = await logits(spec, (params) => GgufWeights.load(p.gguf, params));
      const wrong = await logits(spec, (params) => SafetensorsWeights.load(p.hf, params, { heads: c.heads, kvHeads: c.kvHeads }, { family }));
      // Logits of these models spread over several units; a forgotten conversion moves them by about as much.
      const d = maxDiff(right, wrong);
      console.log(`${m.label}: ${m.what}: max |dlogit| ${d.toExponential(2)}`);
      expect(d).toBeGreaterThan(0.1);
    }, 30_000);
  }
});

describe('infer import refuses what the spec cannot express', () => {
  const c = CASES[3];
  const variant = (name: string, config: Record<string, unknown>, edit?: (d: string) => void) => {
    const p = { hf: join(dir, `refuse_${name}`), gguf: join(dir, `refuse_${name}.gguf`) };
    writeHfTwins(p.hf, p.gguf, { ...c, config });
    edit?.(p.hf);
    return () => importHf(p.hf);
  };
  it.each([
    ['rope_scaling', { rope_scaling: { rope_type: 'yarn', factor: 4 } }, /'rope_scaling' is .*yarn.*rope scaling is not supported/],
    ['partial', { partial_rotary_factor: 0.5 }, /partial RoPE is not supported/],
    ['architecture', { architectures: ['GPT2LMHeadModel'] }, /architectures\[0\] is "GPT2LMHeadModel"; infer imports LlamaForCausalLM/],
    ['activation', { hidden_act: 'gelu' }, /the activation is "gelu"; the Qwen3ForCausalLM spec uses silu/],
    ['bias', { attention_bias: true }, /'attention_bias' is true: the Qwen3ForCausalLM spec has no q\/k\/v biases/],
    ['window', { use_sliding_window: true }, /'use_sliding_window' is true/],
    ['heads', { num_key_value_heads: 3 }, /'num_attention_heads' \(4\) is not a multiple of 'num_key_value_heads' \(3\)/],
  ])('%s', (name, config, error) => { expect(variant(name, config)).toThrow(error); });

  it('a tensor the spec leaves out (by file and byte offset), and a missing config.json', () => {
    const p = join(dir, 'refuse_extra');
    writeHfTwins(p, `${p}.gguf`, c);
    writeFileSync(join(p, 'config.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(p, 'config.json'), 'utf8')), architectures: ['LlamaForCausalLM'] }));
    // Qwen3's q/k norms have no place in a llama spec.
    expect(() => importHf(p)).toThrow(/model\.safetensors: byte \d+: tensor model\.layers\.\d+\.self_attn\.[qk]_norm\.weight: the imported spec has no parameter for it \(nor for 3 more tensors\)/);
    rmSync(join(p, 'config.json'));
    expect(() => importHf(p)).toThrow(/config\.json: no such file: a Hugging Face checkpoint is imported from the config\.json beside its \.safetensors files/);
  });

  it('Gemma 2: layer_types other than alternating (or all) windows refused, query_pre_attn_scalar sets the scale; Qwen3-MoE without renormalisation', () => {
    const g = CASES[4];
    const p = join(dir, 'refuse_gemma');
    writeHfTwins(p, `${p}.gguf`, { ...g, shards: 1, config: { layer_types: ['full_attention', 'sliding_attention'] } });
    expect(() => importHf(p)).toThrow(/'layer_types' is neither windows on every layer nor on the even layers/);
    writeHfTwins(p, `${p}.gguf`, { ...g, shards: 1, config: { layer_types: ['sliding_attention', 'sliding_attention'] } });
    expect(importHf(p)).toMatch(/attention\(q, cache\(k, v\), causal, window = sliding_window, softcap = attn_softcap\)/);
    // The 27B model's scalar is dim / heads (llama.cpp: its 46 layers); any other is written out.
    writeHfTwins(p, `${p}.gguf`, { ...CASES[5], config: { query_pre_attn_scalar: 24 } });
    expect(importHf(p)).toMatch(/causal, window = sliding_window \* \(1 - layer_index % 2\), scale = 1 \/ sqrt\(dim \/ heads\), softcap/);
    writeHfTwins(p, `${p}.gguf`, { ...CASES[5], config: { query_pre_attn_scalar: 20 } });
    expect(importHf(p)).toMatch(/, scale = 1 \/ sqrt\(20\.0\), softcap/);
    const q = join(dir, 'qwen3moe_norenorm');
    for (const norm of [false, undefined]) {
      writeHfTwins(q, `${q}.gguf`, { ...CASES[8], config: { norm_topk_prob: norm } });
      expect(importHf(q)).toMatch(/r = topk\(softmax\(h @ ffn_gate_inp\), k = top_k, renorm = false\)/);
    }
  });
});

it('on WebGPU too: the Gemma 2 checkpoint gives the converted GGUF file\'s logits', async () => {
  const c = CASES[4];
  const p = paths(c);
  writeHfTwins(p.hf, p.gguf, c);
  const { program } = compile(importHf(p.hf));
  const device = await createGpuDevice();
  try {
    const gpu = async (w: WeightSource) => {
      const e = await WebGpuEngine.create({ device, program, backend: wgslBackend, weights: w });
      try { return Array.from(await e.forward(prompt, positions)); } finally { e.dispose(); }
    };
    const fromHf = await gpu(SafetensorsWeights.load(p.hf, program.params, { heads: c.heads, kvHeads: c.kvHeads }));
    expect(fromHf).toHaveLength(prompt.length * c.vocab);
    expect(fromHf).toEqual(await gpu(GgufWeights.load(p.gguf, program.params)));
  } finally { device.destroy(); }
}, 60_000);

it('infer import DIR, then infer run SPEC --weights DIR gives the GGUF run\'s tokens', async () => {
  const c = CASES[4];
  const p = paths(c);
  writeHfTwins(p.hf, p.gguf, c);
  const spec = join(dir, 'cli.infer');
  const cli = async (...args: string[]) => {
    let out = '', err = '';
    const code = await main(args, { out: (t) => { out += t; }, err: (t) => { err += t; } });
    return { code, out, err };
  };
  const imp = await cli('import', p.hf, '-o', spec);
  expect(imp.code, imp.err).toBe(0);
  expect(imp.err).toContain(`--weights ${p.hf}`);
  // The checkpoint named by its index or its config.json imports the same model.
  for (const file of ['model.safetensors.index.json', 'config.json']) {
    const r = await cli('import', join(p.hf, file));
    expect(r.code, r.err).toBe(0);
    expect(body(r.out)).toBe(body(readFileSync(spec, 'utf8')));
  }
  const run = async (weights: string) => {
    const r = await cli('run', spec, '--weights', weights, '--backend', 'cpu', '--json', '--tokens', '1,270,281,17,99,12', '--max-tokens', '12', '--ignore-eos');
    expect(r.code, r.err).toBe(0);
    return JSON.parse(r.out).tokens as number[];
  };
  const tokens = await run(p.gguf);
  expect(tokens).toHaveLength(12);
  expect(await run(p.hf)).toEqual(tokens);
}, 30_000);
