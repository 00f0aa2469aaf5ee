// Quantised weights in the compiler: which params the scheduler keeps as q8_0 /
// q4_0 blocks (quantParams.ts), the kernel specs and keys that carry it, the cost
// model's bytes by dtype, and `infer run` picking it up from a GGUF file's header.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../cli/main.ts';
import { fileWeightTypes } from '../../cli/weights.ts';
import { compileSpec } from '../../compiler/compile.ts';
import { decodeMinimumBytes, forwardCost, kernelCost, paramBytes, unchosenExpertBytes } from '../../compiler/cost.ts';
import { importGguf } from '../../cli/importSpec.ts';
import { bufferBytes, type Program } from '../../program/program.ts';
import { kernelKey, type KernelSpec } from '../../program/kernels.ts';
import { weightBytes } from '../../program/quant.ts';
import { writeLlamaGguf, type GgufLlama } from '../../runtime/weights/randomLlamaGguf.ts';

const dir = mkdtempSync(join(tmpdir(), 'infer-quant-'));

function compiled(m: GgufLlama, types?: Map<string, string>, noFuse?: ReadonlySet<string>): Program {
  const file = join(dir, `m${m.seed}-${m.type}.gguf`);
  writeLlamaGguf(file, m);
  const c = compileSpec(importGguf(file), 'q.infer', { weightTypes: types ?? fileWeightTypes(file), noFuse });
  return c.program!;
}

const base: GgufLlama = { vocab: 288, dim: 64, layers: 2, heads: 4, kvHeads: 2, ffn: 96, type: 'q4_0', tied: false, seed: 51, ctx: 32 };
const dtypes = (p: Program) => new Map(p.buffers.filter((b) => b.kind === 'param').map((b) => [b.name.slice(6), b.dtype]));

describe('which params stay quantised', () => {
  it('every q4_0 / q8_0 matrix (matmul weights and the embedding table), never the f32 norms', () => {
    for (const type of ['q4_0', 'q8_0'] as const) {
      const p = compiled({ ...base, type });
      for (const [name, dtype] of dtypes(p)) expect(dtype, name).toBe(/norm/.test(name) ? 'f32' : type);
      const matmuls = p.kernels.filter((k) => k.spec.kind === 'matmul');
      expect(matmuls.length).toBeGreaterThan(0);
      for (const k of matmuls) expect((k.spec as Extract<KernelSpec, { kind: 'matmul' }>).wtype).toBe(type);
      expect(p.kernels.find((k) => k.spec.kind === 'embed')!.spec).toMatchObject({ wtype: type });
    }
  });

  it('a tied token_embd (embedding and output matmul) stays quantised for both uses', () => {
    const p = compiled({ ...base, tied: true, seed: 52 });
    expect(dtypes(p).get('token_embd')).toBe('q4_0');
    expect(p.kernels.filter((k) => k.spec.kind === 'matmul' && k.spec.N === base.vocab).map((k) => (k.spec as { wtype?: string }).wtype)).toEqual(['q4_0']);
  });

  it('f32 files, 1-D params, K not a multiple of 32, and no types: f32 with unchanged kernel keys; f16 matrices stay f16', () => {
    const plain = compiled({ ...base, type: 'f32', seed: 53 });
    expect([...dtypes(plain).values()].every((d) => d === 'f32')).toBe(true);
    const half = compiled({ ...base, type: 'f16', seed: 53 });
    expect(dtypes(half).get('blk.0.attn_q')).toBe('f16');
    expect(dtypes(half).get('output_norm')).toBe('f32'); // 1-D params are f32 in the file
    const p = compiled({ ...base, seed: 53 }, new Map([['output_norm', 'q8_0'], ['blk.0.attn_q', 'q8_0'], ['blk.0.ffn_down', 'q4_0']]));
    expect(dtypes(p).get('output_norm')).toBe('f32'); // 1-D: a norm weight, read as f32
    expect(dtypes(p).get('blk.0.attn_q')).toBe('q8_0');
    expect(dtypes(p).get('blk.0.ffn_down')).toBe('q4_0'); // K = ffn = 96
    const odd = compiled({ ...base, ffn: 80, type: 'f32', seed: 54 }, new Map([['blk.0.ffn_down', 'q4_0'], ['blk.0.ffn_up', 'q4_0']]));
    expect(dtypes(odd).get('blk.0.ffn_down')).toBe('f32'); // K = 80: not whole blocks
    expect(dtypes(odd).get('blk.0.ffn_up')).toBe('q4_0'); // K = dim = 64
    const spec: KernelSpec = { kind: 'matmul', K: 64, N: 8, prologue: 'none', eps: 0, residual: false };
    expect(kernelKey(spec)).toBe('matmul_K64_N8_prologuenone_eps0_residualfalse');
    expect(kernelKey({ ...spec, wtype: 'q4_0' })).toBe('matmul_K64_N8_prologuenone_eps0_residualfalse_wtypeq4_0');
  });
});

describe('MoE expert tensors (3-D [K, N, experts])', () => {
  const moe: GgufLlama = { ...base, experts: 4, expertsUsed: 2, ffn: 64, seed: 58 };
  const experts = (p: Program) => p.kernels.map((k) => k.spec).filter((s): s is Extract<KernelSpec, { kind: 'moe_experts' }> => s.kind === 'moe_experts');

  it('stay blocks for the fused moe_experts kernels and the unfused dense expert_matmul; the router only where a matmul reads it', () => {
    for (const type of ['q4_0', 'q8_0'] as const) {
      for (const fuse of [true, false]) {
        const p = compiled({ ...moe, type, seed: fuse ? 58 : 59 }, undefined, fuse ? undefined : new Set(['moe']));
        const d = dtypes(p);
        for (let l = 0; l < moe.layers; l++) {
          for (const t of ['gate', 'up', 'down']) expect(d.get(`blk.${l}.ffn_${t}_exps`), `${type} ${t}`).toBe(type);
          expect(d.get(`blk.${l}.ffn_gate_inp`)).toBe(fuse ? 'f32' : type); // moe_route reads f32
        }
        const ks = experts(p);
        expect(ks.map((k) => k.input).sort()).toEqual(fuse ? ['slot', 'swiglu'] : ['shared', 'slot']);
        for (const k of ks) expect(k).toMatchObject({ wtype: type, dense: !fuse });
      }
    }
  });

  it('K not a multiple of 32 falls back to f32 per param; a swiglu pair of different types becomes f32 together', () => {
    // ffn = 48: down_exps has K = 48 (not whole blocks), gate/up K = dim = 64.
    const names = (l: number) => ['gate', 'up', 'down'].map((t) => `blk.${l}.ffn_${t}_exps`);
    for (const fuse of [true, false]) {
      const types = new Map([...names(0), ...names(1)].map((n) => [n, 'q4_0']));
      const p = compiled({ ...moe, ffn: 48, type: 'f32', seed: 60 }, types, fuse ? undefined : new Set(['moe']));
      const d = dtypes(p);
      expect(d.get('blk.0.ffn_down_exps')).toBe('f32');
      expect(d.get('blk.0.ffn_gate_exps')).toBe('q4_0');
      expect(d.get('blk.0.ffn_up_exps')).toBe('q4_0');
      for (const k of experts(p)) expect(k.wtype).toBe(k.K === 48 ? undefined : 'q4_0');
    }
    const mixed = new Map([['blk.0.ffn_gate_exps', 'q8_0'], ['blk.0.ffn_up_exps', 'q4_0'], ['blk.0.ffn_down_exps', 'q4_0'],
      ['blk.1.ffn_gate_exps', 'q8_0'], ['blk.1.ffn_up_exps', 'q8_0']]);
    const p = compiled({ ...moe, type: 'f32', seed: 61 }, mixed);
    const d = dtypes(p);
    expect([d.get('blk.0.ffn_gate_exps'), d.get('blk.0.ffn_up_exps'), d.get('blk.0.ffn_down_exps')]).toEqual(['f32', 'f32', 'q4_0']);
    expect([d.get('blk.1.ffn_gate_exps'), d.get('blk.1.ffn_up_exps'), d.get('blk.1.ffn_down_exps')]).toEqual(['q8_0', 'q8_0', 'f32']);
    // Unfused, gate and up are separate expert_matmuls: each keeps its own type.
    const u = dtypes(compiled({ ...moe, type: 'f32', seed: 62 }, mixed, new Set(['moe'])));
    expect([u.get('blk.0.ffn_gate_exps'), u.get('blk.0.ffn_up_exps')]).toEqual(['q8_0', 'q4_0']);
  });

  it('bytes: expert weights at 34 / 18 bytes per 32, in kernels, params, unchosen experts and the decode minimum', () => {
    const spec: KernelSpec = { kind: 'moe_experts', K: 64, N: 96, experts: 8, k: 2, dense: false, input: 'swiglu', combine: false, residual: false };
    for (const T of [1, 3, 9]) {
      const chosen = Math.min(8, 2 * T), f32 = kernelCost(spec, T, 1).bytesRead;
      expect(f32 - kernelCost({ ...spec, wtype: 'q8_0' }, T, 1).bytesRead).toBe(2 * chosen * (64 * 96 * 4 - (64 * 96 / 32) * 34));
      expect(f32 - kernelCost({ ...spec, wtype: 'q4_0' }, T, 1).bytesRead).toBe(2 * chosen * (64 * 96 * 4 - (64 * 96 / 32) * 18));
    }
    const dense: KernelSpec = { kind: 'moe_experts', K: 64, N: 96, experts: 8, k: 8, dense: true, input: 'shared', combine: false, residual: false };
    expect(kernelCost(dense, 1, 1).bytesRead - kernelCost({ ...dense, wtype: 'q4_0' }, 1, 1).bytesRead).toBe(8 * (64 * 96 * 4 - (64 * 96 / 32) * 18));
    expect(kernelKey({ ...spec, wtype: 'q4_0' })).toBe(`${kernelKey(spec)}_wtypeq4_0`);
    const q = compiled({ ...moe, seed: 63 }), f = compiled({ ...moe, type: 'f32', seed: 63 });
    const expertWeights = moe.layers * 3 * moe.dim * moe.ffn * moe.experts!;
    const by = (p: Program, pred: (shape: readonly number[]) => boolean) => p.params.filter((x) => pred(x.shape)).reduce((a, x) => a + x.shape.reduce((u, v) => u * v, 1), 0);
    expect(by(q, (s) => s.length === 3)).toBe(expertWeights);
    // Routers are f32 (moe_route), every other matrix and the experts q4_0, norms f32.
    const routers = moe.layers * moe.dim * moe.experts!;
    expect(paramBytes(q)).toBe(weightBytes('q4_0', by(q, (s) => s.length >= 2) - routers) + 4 * (routers + by(q, (s) => s.length === 1)));
    const unchosen = moe.layers * 3 * (moe.experts! - moe.expertsUsed!) * moe.dim * moe.ffn;
    expect(unchosenExpertBytes(q)).toBe(weightBytes('q4_0', unchosen));
    expect(unchosenExpertBytes(f)).toBe(4 * unchosen);
    expect(decodeMinimumBytes(f, 8) - decodeMinimumBytes(q, 8)).toBe(paramBytes(f) - paramBytes(q) - 4 * unchosen + weightBytes('q4_0', unchosen)
      - 4 * (moe.vocab - 1) * moe.dim + weightBytes('q4_0', (moe.vocab - 1) * moe.dim));
    // A decode step reads k of the experts in blocks: the forward's bytes follow.
    const ratio = forwardCost(f, 1, 8).bytesRead / forwardCost(q, 1, 8).bytesRead;
    expect(ratio).toBeGreaterThan(4);
    expect(ratio).toBeLessThan(128 / 18);
  });
});

describe('bytes by dtype', () => {
  it('q8_0 reads 34 and q4_0 18 bytes per 32 weights, in kernels, params and buffers', () => {
    const spec: KernelSpec = { kind: 'matmul', K: 128, N: 48, prologue: 'rmsnorm', eps: 1e-5, residual: true };
    const f32 = kernelCost(spec, 1, 1).bytesRead;
    expect(f32 - kernelCost({ ...spec, wtype: 'q8_0' }, 1, 1).bytesRead).toBe(128 * 48 * 4 - (128 * 48 / 32) * 34);
    expect(f32 - kernelCost({ ...spec, wtype: 'q4_0' }, 1, 1).bytesRead).toBe(128 * 48 * 4 - (128 * 48 / 32) * 18);
    const q = compiled({ ...base, seed: 55 }), f = compiled({ ...base, type: 'f32', seed: 55 });
    const matrices = q.params.filter((p) => p.shape.length === 2).reduce((a, p) => a + p.shape[0] * p.shape[1], 0);
    const norms = q.params.filter((p) => p.shape.length === 1).reduce((a, p) => a + p.shape[0], 0);
    expect(paramBytes(q)).toBe(weightBytes('q4_0', matrices) + 4 * norms);
    expect(paramBytes(f)).toBe(4 * (matrices + norms));
    // Device buffers hold exactly the file's bytes (plus at most 2 bytes of scale padding).
    for (const b of q.buffers.filter((b) => b.dtype === 'q4_0')) {
      expect(bufferBytes(b, { maxTokens: 1, pages: 1, maxSeqs: 1 }) - weightBytes('q4_0', b.elements)).toBeGreaterThanOrEqual(0);
      expect(bufferBytes(b, { maxTokens: 1, pages: 1, maxSeqs: 1 }) - weightBytes('q4_0', b.elements)).toBeLessThanOrEqual(2);
    }
    // A decode step reads the matrices once: q4_0 reads (18/32)/4 of the f32 bytes there.
    const ratio = forwardCost(f, 1, 8).bytesRead / forwardCost(q, 1, 8).bytesRead;
    expect(ratio).toBeGreaterThan(4);
    expect(ratio).toBeLessThan(128 / 18);
  });
});

describe('infer run on a quantised GGUF file', () => {
  it('keeps the blocks on WebGPU (less memory) and matches the dequantised run; --f32-weights opts out', async () => {
    const file = join(dir, 'cli-q8.gguf'), spec = join(dir, 'cli.infer');
    writeLlamaGguf(file, { ...base, type: 'q8_0', seed: 56 });
    expect((await main(['import', file, '-o', spec], { out: () => {}, err: () => {} }))).toBe(0);
    expect(readFileSync(spec, 'utf8')).toMatch(/weights gguf/);
    const run = async (...extra: string[]) => {
      let out = '', err = '';
      const code = await main(['run', spec, '--weights', file, '--json', '--tokens', '1,270,281', '--max-tokens', '10', '--ignore-eos', ...extra],
        { out: (t) => { out += t; }, err: (t) => { err += t; } });
      expect(code, err).toBe(0);
      return JSON.parse(out) as { tokens: number[]; stats: { bytes_allocated: number } };
    };
    const q = await run(), f = await run('--f32-weights'), cpu = await run('--backend', 'cpu');
    expect(q.tokens).toEqual(cpu.tokens);
    expect(f.tokens).toEqual(cpu.tokens);
    expect(q.stats.bytes_allocated).toBeLessThan(f.stats.bytes_allocated * 0.6);
  });

  it('infer compile --weights FILE emits the block kernels run would use', async () => {
    const file = join(dir, 'cli-q4.gguf'), spec = join(dir, 'cli4.infer'), out = join(dir, 'wgsl');
    writeLlamaGguf(file, { ...base, seed: 57 });
    expect(await main(['import', file, '-o', spec], { out: () => {}, err: () => {} })).toBe(0);
    let err = '';
    expect(await main(['compile', spec, '--target', 'wgsl', '--out', out, '--weights', file], { out: () => {}, err: (t) => { err += t; } }), err).toBe(0);
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as { kernels: { spec: KernelSpec; variants: { file: string }[] }[] };
    const matmuls = manifest.kernels.filter((k) => k.spec.kind === 'matmul');
    expect(matmuls.length).toBeGreaterThan(0);
    for (const k of matmuls) {
      expect(k.spec).toMatchObject({ wtype: 'q4_0' });
      for (const v of k.variants) expect(readFileSync(join(out, v.file), 'utf8')).toMatch(/var<storage, read> w: array<u32>;/);
    }
  });
});
