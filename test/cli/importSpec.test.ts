// `infer import`: GGUF header -> .infer spec. The spec compiles, reproduces the
// file's architecture (checked by running it on the file's weights against the
// same spec bound to the same seeded weights), is sanitised against hostile
// metadata, and unsupported files are refused with an error that says what is supported.
import fc from 'fast-check';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileSpec } from '../../compiler/compile.ts';
import { f32Literal, importGguf, ImportError, sanitizeName } from '../../cli/importSpec.ts';
import { CpuEngine } from '../../runtime/cpu/engine.ts';
import { GgufWeights } from '../../runtime/weights/gguf.ts';
import { gv, writeGguf } from '../../runtime/weights/ggufWriter.ts';
import { RandomWeights } from '../../runtime/weights/random.ts';
import { writeLlamaGguf, type GgufLlama } from '../../runtime/weights/randomLlamaGguf.ts';

const dir = mkdtempSync(join(tmpdir(), 'infer-import-'));
let n = 0;
const base: GgufLlama = { vocab: 272, dim: 32, layers: 2, heads: 4, kvHeads: 2, ffn: 48, type: 'f32', tied: false, seed: 9, ctx: 64 };

function file(m: Partial<GgufLlama> = {}): string {
  const f = join(dir, `m${n++}.gguf`);
  writeLlamaGguf(f, { ...base, ...m });
  return f;
}

function compiled(spec: string) {
  const c = compileSpec(spec, 'imported.infer');
  expect(c.diagnostics.map((d) => d.message)).toEqual([]);
  return c;
}

describe('infer import', () => {
  it('writes a spec with the file\'s config that compiles and binds GGUF weights', () => {
    const spec = importGguf(file({ theta: 500000, eps: 1e-6, name: 'Tiny Llama 3.1 (test)' }));
    const m = compiled(spec).program!.model;
    expect(m).toMatchObject({ name: 'Tiny_Llama_3_1_test', vocab: 272, dim: 32, layers: 2, heads: 4, kvHeads: 2, headDim: 8, maxContext: 64, eos: 2, weights: { binding: 'gguf' } });
    expect(m.constants).toMatchObject({ ffn: 48, rope_theta: 500000, norm_eps: 1e-6 });
    expect(spec).toMatch(/^  logits = rmsnorm\(x, output_norm, eps = norm_eps\) @ output$/m);
    expect(spec).toMatch(/^    output: \[dim, vocab\]$/m);
  });

  it('ties the output to token_embd when the file has no output.weight; MQA; an explicit key_length', () => {
    const spec = importGguf(file({ tied: true, kvHeads: 1, headDim: 16 }));
    expect(spec).toMatch(/@ token_embd$/m);
    expect(spec).not.toMatch(/^\s+output: \[/m);
    expect(spec).toMatch(/multi-query attention/);
    expect(compiled(spec).program!.model).toMatchObject({ kvHeads: 1, headDim: 16 });
  });

  it('computes what the same spec computes on the same seeded weights (the binding reads every tensor right)', async () => {
    for (const tied of [false, true]) {
      const f = file({ tied, seed: 21 });
      const spec = importGguf(f);
      const viaGguf = compiled(spec), viaSeed = compiled(spec.replace('weights gguf', 'weights random(seed = 21)'));
      const a = new CpuEngine(viaGguf.graph!, GgufWeights.load(f, viaGguf.program!.params), viaGguf.program!);
      const b = new CpuEngine(viaSeed.graph!, new RandomWeights(viaSeed.program!.params, 21), viaSeed.program!);
      const ids = Int32Array.of(1, 260, 270, 5), pos = Int32Array.of(0, 1, 2, 3);
      expect(await a.forward(ids, pos)).toEqual(await b.forward(ids, pos));
    }
  });

  it('imports a Mixtral-style MoE file (merged experts) into a moe spec that reads every expert tensor right', async () => {
    const f = file({ experts: 4, expertsUsed: 2, seed: 23 });
    const spec = importGguf(f);
    expect(spec).toMatch(/4 experts \(top-2\)/);
    expect(spec).toMatch(/^    r = topk\(softmax\(h @ ffn_gate_inp\), k = top_k\)$/m);
    const viaGguf = compiled(spec), viaSeed = compiled(spec.replace('weights gguf', 'weights random(seed = 23)'));
    expect(viaGguf.graph!.nodes.filter((x) => x.op === 'moe_route')).toHaveLength(2);
    const a = new CpuEngine(viaGguf.graph!, GgufWeights.load(f, viaGguf.program!.params), viaGguf.program!);
    const b = new CpuEngine(viaSeed.graph!, new RandomWeights(viaSeed.program!.params, 23), viaSeed.program!);
    const ids = Int32Array.of(1, 260, 270, 5), pos = Int32Array.of(0, 1, 2, 3);
    expect(await a.forward(ids, pos)).toEqual(await b.forward(ids, pos));
  });

  it('imports qwen2, qwen3, qwen3moe, gemma2, phi3 and a llama sliding window, with each family\'s lines, reading every tensor right', async () => {
    for (const [arch, lines] of [
      ['qwen2', [/^    q = rope\(reshape\(h @ attn_q \+ attn_q_bias, \[T, heads, head_dim\]\), theta = rope_theta, neox = true\)$/m, /^      attn_v_bias: \[kv_heads \* head_dim\]$/m]],
      ['qwen3', [/^    k = rope\(rmsnorm\(reshape\(h @ attn_k, \[T, kv_heads, head_dim\]\), attn_k_norm, eps = norm_eps\), theta = rope_theta, neox = true\)$/m, /^      attn_q_norm: \[head_dim\]$/m]],
      ['llama', [/^    sliding_window = 3$/m, /attention\(q, cache\(k, v\), causal, window = sliding_window\)/]],
      ['gemma2', [/^  x = embed\(tokens, token_embd\) \* sqrt\(dim\)$/m, /window = sliding_window \* \(1 - layer_index % 2\), softcap = attn_softcap/, /^  logits = softcap\(rmsnorm\(x, output_norm, eps = norm_eps\) @ token_embd, final_softcap\)$/m, /^    attn_softcap = 50.0; final_softcap = 30.0$/m]],
      ['qwen3moe', [/^    r = topk\(softmax\(h @ ffn_gate_inp\), k = top_k\)$/m, /^      attn_k_norm: \[head_dim\]$/m, /^    experts = 4; top_k = 2$/m]],
      ['phi3', [/^    qkv = h @ attn_qkv$/m, /^    v = reshape\(slice\(qkv, \(heads \+ kv_heads\) \* head_dim, kv_heads \* head_dim\), \[T, kv_heads, head_dim\]\)$/m, /silu\(slice\(gu, 0, ffn\)\) \* slice\(gu, ffn, ffn\)/]],
    ] as const) {
      const f = file({ arch, seed: 31, window: arch === 'llama' ? 3 : undefined, ...(arch === 'phi3' ? { name: 'fused' } : {}), ...(arch === 'qwen3moe' ? { experts: 4, expertsUsed: 2 } : {}) });
      const spec = importGguf(f);
      for (const re of lines) expect(spec).toMatch(re);
      expect(spec).toMatch(new RegExp(`^# Imported from .* by \`infer import\`: ${arch} architecture`, 'm'));
      const viaGguf = compiled(spec), viaSeed = compiled(spec.replace('weights gguf', 'weights random(seed = 31)'));
      const a = new CpuEngine(viaGguf.graph!, GgufWeights.load(f, viaGguf.program!.params), viaGguf.program!);
      const b = new CpuEngine(viaSeed.graph!, new RandomWeights(viaSeed.program!.params, 31), viaSeed.program!);
      const ids = Int32Array.of(1, 260, 270, 5, 7), pos = Int32Array.of(0, 1, 2, 3, 4);
      expect(await a.forward(ids, pos)).toEqual(await b.forward(ids, pos));
    }
  });

  it('caps max_context on request', () => {
    expect(compiled(importGguf(file(), { maxContext: 16 })).program!.model.maxContext).toBe(16);
  });

  it('sanitises names from the file: only [A-Za-z0-9_], never a keyword, never empty', () => {
    fc.assert(fc.property(fc.string({ unit: 'grapheme', maxLength: 30 }), (raw) => {
      const s = sanitizeName(raw);
      expect(s).toMatch(/^[A-Za-z][A-Za-z0-9_]{0,66}$/);
      expect(['model', 'config', 'layer', 'params', 'weights', 'return', 'kv_cache']).not.toContain(s);
    }));
    expect(sanitizeName('model')).toBe('model_model');
    expect(sanitizeName('3b')).toBe('M_3b');
    expect(sanitizeName('')).toBe('Imported');
    // A hostile general.name cannot inject spec text.
    const spec = importGguf(file({ name: 'x {\n}\nmodel Evil { config { vocab = 1 } } # ' }));
    expect(spec).toMatch(/^model x_model_Evil_config_vocab_1 \{$/m);
    compiled(spec);
  });

  it('prints f32 metadata as the shortest decimal that reads back as the same f32', () => {
    fc.assert(fc.property(fc.float({ min: Math.fround(1e-12), max: Math.fround(1e12), noNaN: true }), (x) => {
      const s = f32Literal(x);
      expect(Math.fround(Number(s))).toBe(Math.fround(x));
      expect(s).toMatch(/^\d+(\.\d+)?(e-?\d+)?$/);
    }));
    expect([f32Literal(10000), f32Literal(Math.fround(1e-5)), f32Literal(500000)]).toEqual(['10000.0', '0.00001', '500000.0']);
  });
});

describe('infer import refuses what it cannot reproduce', () => {
  const refuse = (f: string, re: RegExp) => {
    expect(() => importGguf(f)).toThrow(ImportError);
    expect(() => importGguf(f)).toThrow(re);
  };

  it('other architectures and MoE, naming them and what is supported', () => {
    const g = join(dir, `gpt2${n++}.gguf`);
    writeGguf(g, [['general.architecture', gv.str('gpt2')]], []);
    refuse(g, /architecture "gpt2" is not supported; infer imports 'llama' \(dense or Mixtral-style MoE, with MHA\/GQA\/MQA attention, tied or separate output\)/);
    refuse(file({ extra: [['llama.expert_count', gv.u32(8)], ['llama.expert_used_count', gv.u32(2)]] }), /mixture of experts \(8 experts\) has no merged expert tensor blk.0.ffn_gate_exps.weight \(files with one tensor per expert are not supported\); infer imports 'llama'/);
    refuse(file({ extra: [['llama.expert_count', gv.u32(4)], ['llama.expert_used_count', gv.u32(5)]] }), /'llama.expert_used_count' must be in 1..4 \(expert_count\), got 5/);
    const none = join(dir, `none${n++}.gguf`);
    writeGguf(none, [], []);
    refuse(none, /no general.architecture in the metadata/);
  });

  it('missing keys, rope scaling, partial rope and extra tensors', () => {
    const noEps = join(dir, `noeps${n++}.gguf`);
    writeGguf(noEps, [['general.architecture', gv.str('llama')], ['llama.block_count', gv.u32(1)], ['llama.embedding_length', gv.u32(8)], ['llama.feed_forward_length', gv.u32(8)], ['llama.attention.head_count', gv.u32(2)]], []);
    refuse(noEps, /needs metadata 'llama.attention.layer_norm_rms_epsilon', which is missing/);
    refuse(file({ extra: [['llama.rope.scaling.type', gv.str('yarn')]] }), /rope scaling "yarn" is not supported/);
    refuse(file({ extra: [['llama.rope.dimension_count', gv.u32(4)]] }), /'llama.rope.dimension_count' \(4\) differs from the head size 8/);
    const biased = join(dir, `bias${n++}.gguf`);
    writeGguf(biased, [['general.architecture', gv.str('llama')], ['llama.block_count', gv.u32(1)], ['llama.embedding_length', gv.u32(8)], ['llama.feed_forward_length', gv.u32(8)],
      ['llama.attention.head_count', gv.u32(2)], ['llama.attention.layer_norm_rms_epsilon', gv.f32(1e-5)]],
    [{ name: 'token_embd.weight', dims: [8, 4], type: 'f32', data: new Float32Array(32) }, { name: 'blk.0.attn_q.bias', dims: [8], type: 'f32', data: new Float32Array(8) }]);
    refuse(biased, /tensor "blk.0.attn_q.bias" is not part of the llama model that infer imports \(biases, rope factors/);
    refuse(file({ arch: 'qwen2', extra: [['qwen2.expert_count', gv.u32(4)]] }), /'qwen2.expert_count' is 4: infer imports qwen2 dense only/);
  });
});
