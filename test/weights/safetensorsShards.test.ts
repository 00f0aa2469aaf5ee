// Sharded Hugging Face checkpoints (model.safetensors.index.json over several files): the
// same model loads to the same weights from its shards as from one file, by index path or
// by directory, and `infer run --weights DIR` gives the single file's tokens. A bad index
// (missing shard, a tensor the named shard lacks, a tensor in two shards, a shard path that
// leaves the directory, no weight_map, bad JSON) is an error naming the file.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { main } from '../../cli/main.ts';
import { compileSpec } from '../../compiler/compile.ts';
import { importGguf } from '../../cli/importSpec.ts';
import { SafetensorsWeights } from '../../runtime/weights/hfLlama.ts';
import { SafetensorsError } from '../../runtime/weights/safetensors.ts';
import { SafetensorsShards } from '../../runtime/weights/safetensorsShards.ts';
import { writeSafetensors } from '../../runtime/weights/safetensorsWriter.ts';
import { writeLlamaGguf, type GgufLlama } from '../../runtime/weights/randomLlamaGguf.ts';
import { writeLlamaSafetensors, writeShardedLlamaSafetensors } from '../fixtures/hfLlama.ts';

const root = mkdtempSync(join(tmpdir(), 'infer-shards-'));
let n = 0;
const fresh = () => { const d = join(root, `c${n++}`); mkdirSync(d); return d; };

describe('sharded safetensors checkpoints', () => {
  it('load the same weights as one file, by index or directory, for any shard count', () =>
    fc.assert(fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 999 }), fc.constantFrom('F32', 'F16', 'BF16' as const), (shards, seed, dtype) => {
      const m: GgufLlama = { vocab: 280, dim: 16, layers: 2, heads: 2, kvHeads: 1, ffn: 24, type: 'f32', tied: seed % 2 === 0, seed, ctx: 32 };
      const dir = fresh();
      const gguf = join(dir, 'm.gguf'), single = join(dir, 'single.safetensors');
      writeLlamaGguf(gguf, m);
      writeLlamaSafetensors(single, m, dtype);
      const shardDir = join(dir, 'sharded');
      mkdirSync(shardDir);
      const index = writeShardedLlamaSafetensors(shardDir, m, shards, dtype);
      const program = compileSpec(importGguf(gguf), 'imported.infer').program!;
      const heads = { heads: m.heads, kvHeads: m.kvHeads };
      const a = SafetensorsWeights.load(single, program.params, heads);
      for (const path of [index, shardDir]) {
        const b = SafetensorsWeights.load(path, program.params, heads);
        for (const p of program.params) expect(Array.from(b.get(p.name)), `${path} ${p.name}`).toEqual(Array.from(a.get(p.name)));
      }
      SafetensorsShards.with(index, (s) => expect(s.tensors.length).toBe(SafetensorsShards.with(single, (t) => t.tensors.length)));
    }), { numRuns: 6 }));

  it('infer run --weights DIR gives the single file\'s tokens', async () => {
    const m: GgufLlama = { vocab: 300, dim: 32, layers: 2, heads: 4, kvHeads: 2, ffn: 48, type: 'f32', tied: false, seed: 5, ctx: 64 };
    const dir = fresh();
    writeLlamaGguf(join(dir, 'm.gguf'), m);
    writeLlamaSafetensors(join(dir, 'one.safetensors'), m);
    mkdirSync(join(dir, 'ckpt'));
    writeShardedLlamaSafetensors(join(dir, 'ckpt'), m, 3);
    const spec = join(dir, 'm.infer');
    writeFileSync(spec, importGguf(join(dir, 'm.gguf')));
    const run = async (weights: string) => {
      let out = '', err = '';
      const code = await main(['run', spec, '--weights', weights, '--backend', 'cpu', '--json', '--tokens', '1,290,33', '--max-tokens', '10', '--ignore-eos'],
        { out: (t) => { out += t; }, err: (t) => { err += t; } });
      expect(code, err).toBe(0);
      return JSON.parse(out).tokens as number[];
    };
    const tokens = await run(join(dir, 'one.safetensors'));
    expect(tokens).toHaveLength(10);
    expect(await run(join(dir, 'ckpt'))).toEqual(tokens);
    expect(await run(join(dir, 'ckpt', 'model.safetensors.index.json'))).toEqual(tokens);
  });

  describe('bad indexes', () => {
    const setup = () => {
      const dir = fresh();
      writeSafetensors(join(dir, 'a.safetensors'), [{ name: 'x', dtype: 'F32', shape: [2], data: Float32Array.of(1, 2) }]);
      writeSafetensors(join(dir, 'b.safetensors'), [{ name: 'y', dtype: 'F32', shape: [2], data: Float32Array.of(3, 4) }]);
      return dir;
    };
    const index = (dir: string, body: unknown) => { const p = join(dir, 'model.safetensors.index.json'); writeFileSync(p, typeof body === 'string' ? body : JSON.stringify(body)); return p; };
    const fails = (path: string, file: string, message: RegExp) => {
      try { SafetensorsShards.open(path).close(); } catch (e) {
        expect(e).toBeInstanceOf(SafetensorsError);
        expect((e as SafetensorsError).file).toBe(file);
        expect((e as Error).message).toMatch(message);
        return;
      }
      throw new Error(`${path} opened without error`);
    };

    it('a good index opens, and reads each tensor from its shard', () => {
      const dir = setup();
      const p = index(dir, { weight_map: { x: 'a.safetensors', y: 'b.safetensors' } });
      SafetensorsShards.with(dir, (s) => {
        expect(Array.from(s.readFloat32(s.tensor('y')!))).toEqual([3, 4]);
        expect(s.fileOf(s.tensor('x')!)).toBe(join(dir, 'a.safetensors'));
        expect(s.path).toBe(p);
      });
    });
    it('a missing shard', () => { const d = setup(); index(d, { weight_map: { x: 'a.safetensors', z: 'c.safetensors' } }); fails(d, join(d, 'c.safetensors'), /cannot open: no such file/); });
    it('a tensor the named shard lacks', () => { const d = setup(); const p = index(d, { weight_map: { x: 'b.safetensors' } }); fails(p, p, /puts tensor x in b.safetensors, which does not have it/); });
    it('a tensor in two shards', () => {
      const d = setup();
      writeSafetensors(join(d, 'b.safetensors'), [{ name: 'x', dtype: 'F32', shape: [1], data: Float32Array.of(5) }]);
      index(d, { weight_map: { x: 'a.safetensors', y: 'b.safetensors' } });
      fails(d, join(d, 'b.safetensors'), /tensor x: is also in .*a\.safetensors/);
    });
    it('a shard path outside the directory', () => { const d = setup(); const p = index(d, { weight_map: { x: '../a.safetensors' } }); fails(p, p, /shards must be .safetensors file names beside the index/); });
    it('no weight_map', () => { const d = setup(); const p = index(d, { metadata: {} }); fails(p, p, /no 'weight_map' object/); });
    it('not JSON', () => { const d = setup(); const p = index(d, '{"weight_map": '); fails(p, p, /not valid JSON/); });
    it('a directory with neither', () => { const d = fresh(); fails(d, d, /without model.safetensors.index.json or model.safetensors/); });
    it('the CLI reports it as file: byte: message, with no stack trace', async () => {
      const d = setup();
      index(d, { weight_map: { x: 'b.safetensors' } });
      const spec = join(d, 's.infer');
      writeLlamaGguf(join(d, 'm.gguf'), { vocab: 280, dim: 16, layers: 1, heads: 2, kvHeads: 1, ffn: 24, type: 'f32', tied: true, seed: 3, ctx: 32 });
      writeFileSync(spec, importGguf(join(d, 'm.gguf')));
      let err = '';
      const code = await main(['run', spec, '--weights', d, '--backend', 'cpu', '--tokens', '1'], { out: () => {}, err: (t) => { err += t; } });
      expect(code, err).not.toBe(0);
      expect(err).toMatch(/model\.safetensors\.index\.json: byte 0: tensor x: the index puts tensor x in b\.safetensors/);
      expect(err).not.toMatch(/\n\s+at /);
    });
  });
});
