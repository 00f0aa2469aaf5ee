// Bad GGUF files: each defect is a GgufError that names the file, the byte offset
// and (where there is one) the tensor; never a raw exception, a huge allocation
// or a hang. Valid files are written, then the exact field is corrupted.
import fc from 'fast-check';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GgufError, GgufFile, GgufWeights } from '../../runtime/weights/gguf.ts';
import type { GgufArray } from '../../runtime/weights/ggufTypes.ts';
import { gv, writeGguf, type GgufLayout } from '../../runtime/weights/ggufWriter.ts';

const dir = mkdtempSync(join(tmpdir(), 'infer-ggufbad-'));
let n = 0;

/** A small valid file: metadata of several types and two tensors (a: f32 [4, 2], b: q8_0 [32, 2]). */
function valid(): { file: string; bytes: Uint8Array; layout: GgufLayout } {
  const file = join(dir, `ok${n++}.gguf`);
  const layout = writeGguf(file, [
    ['general.architecture', gv.str('llama')], ['flag', gv.bool(true)], ['names', gv.strs(['x', 'yy'])], ['big', gv.u64(7)],
  ], [
    { name: 'a', dims: [4, 2], type: 'f32', data: Float32Array.from({ length: 8 }, (_, i) => i) },
    { name: 'b', dims: [32, 2], type: 'q8_0', data: new Float32Array(64).fill(0.5) },
  ]);
  return { file, bytes: new Uint8Array(readFileSync(file)), layout };
}

/** Writes a copy of `bytes` with `patch` applied and returns its path. */
function corrupt(bytes: Uint8Array, patch: (b: Uint8Array, dv: DataView) => Uint8Array | void): string {
  const b = Uint8Array.from(bytes);
  const out = patch(b, new DataView(b.buffer)) ?? b;
  const file = join(dir, `bad${n++}.gguf`);
  writeFileSync(file, out);
  return file;
}

/** Opening `file` fails with a GgufError at `offset` whose message matches `re` (and names the file). */
function expectError(file: string, offset: number, re: RegExp, tensor?: string): GgufError {
  let err: unknown;
  try { GgufFile.open(file).close(); } catch (e) { err = e; }
  expect(err, 'a GgufError').toBeInstanceOf(GgufError);
  const g = err as GgufError;
  expect(g.message).toMatch(re);
  expect(g.message.startsWith(`${file}: byte ${offset}: `), g.message).toBe(true);
  expect(g.offset).toBe(offset);
  if (tensor) expect(g.tensor).toBe(tensor);
  return g;
}

const keyOffset = 24; // magic, version, tensor count, kv count

describe('bad GGUF headers', () => {
  const { bytes, layout } = valid();
  const a = layout.tensors[0], b = layout.tensors[1];

  it('wrong magic, unsupported or big-endian version', () => {
    expectError(corrupt(bytes, (x) => x.set([0x47, 0x47, 0x4d, 0x4c], 0)), 0, /wrong magic 'GGML' \(0x4c4d4747\): a GGUF file starts with 'GGUF'/);
    expectError(corrupt(bytes, (_, dv) => dv.setUint32(4, 1, true)), 4, /unsupported GGUF version 1 \(versions 2 and 3 are supported\)/);
    expectError(corrupt(bytes, (_, dv) => dv.setUint32(4, 4, true)), 4, /unsupported GGUF version 4/);
    expectError(corrupt(bytes, (_, dv) => dv.setUint32(4, 3, false)), 4, /big-endian GGUF file/);
  });

  it('truncated anywhere: always a GgufError, never another exception', () => {
    expectError(corrupt(bytes, (x) => x.subarray(0, 6)), 4, /truncated: the header: the version needs 4 bytes at byte 4, but the file ends at byte 6/);
    expectError(corrupt(bytes, (x) => x.subarray(0, 0)), 0, /truncated: the header: the magic needs 4 bytes at byte 0/);
    // Cut inside b's data: the layout check names b and where its data starts.
    expectError(corrupt(bytes, (x) => x.subarray(0, b.fileOffset + b.bytes - 1)), b.fileOffset, /tensor b: data at bytes \d+\.\.\d+ runs past the end of the file \(size \d+\)/, 'b');
    fc.assert(fc.property(fc.integer({ min: 0, max: b.fileOffset + b.bytes - 1 }), (len) => {
      const file = corrupt(bytes, (x) => x.subarray(0, len));
      expect(() => GgufFile.open(file).close()).toThrow(GgufError);
      expect(() => GgufFile.open(file).close()).toThrow(/truncated|runs past the end|past the end of the file/);
    }), { numRuns: 80 });
  });

  it('tensor offsets past the end, overlapping or misaligned', () => {
    expectError(corrupt(bytes, (_, dv) => dv.setBigUint64(b.offsetOffset, 1n << 40n, true)), b.offsetOffset, /tensor b: data offset 1099511627776 is past the end of the file/, 'b');
    const nearEnd = Math.floor((bytes.length - layout.dataOffset) / 32) * 32;
    expectError(corrupt(bytes, (_, dv) => dv.setBigUint64(b.offsetOffset, BigInt(nearEnd), true)), layout.dataOffset + nearEnd, /tensor b: data at bytes \d+\.\.\d+ runs past the end of the file/, 'b');
    expectError(corrupt(bytes, (_, dv) => dv.setBigUint64(b.offsetOffset, 0n, true)), a.fileOffset, /tensor b: data at bytes \d+\.\.\d+ overlaps tensor a at bytes/, 'b');
    expectError(corrupt(bytes, (_, dv) => dv.setBigUint64(b.offsetOffset, 8n, true)), b.offsetOffset, /tensor b: data offset 8 is not a multiple of the alignment 32/, 'b');
  });

  it('unknown tensor types, bad dims', () => {
    expectError(corrupt(bytes, (_, dv) => dv.setUint32(b.typeOffset, 99, true)), b.typeOffset, /tensor b: unknown tensor type 99/, 'b');
    expectError(corrupt(bytes, (_, dv) => dv.setBigUint64(b.dimsOffset, 33n, true)), b.typeOffset, /tensor b: q8_0 packs 32 values per block, but dim 0 is 33/, 'b');
    expectError(corrupt(bytes, (_, dv) => dv.setBigUint64(b.dimsOffset, 1n << 50n, true)), b.dimsOffset, /tensor b: dims \[1125899906842624, \.\.\.\] hold more elements than the file could store/, 'b');
    expectError(corrupt(bytes, (_, dv) => dv.setUint32(b.dimsOffset - 4, 0, true)), b.dimsOffset - 4, /tensor b: has 0 dimensions \(1 to 4 are allowed\)/, 'b');
  });

  it('counts and lengths larger than the file are refused before any allocation', () => {
    const t0 = performance.now();
    expectError(corrupt(bytes, (_, dv) => dv.setBigUint64(8, 1n << 60n, true)), 8, /the tensor count is 1152921504606846976, but at 24 bytes each that needs more than the \d+ bytes left/);
    expectError(corrupt(bytes, (_, dv) => dv.setBigUint64(16, 1n << 62n, true)), 16, /the metadata count is/);
    expectError(corrupt(bytes, (_, dv) => dv.setBigUint64(keyOffset, 1n << 62n, true)), keyOffset, /metadata entry 0: the length of its key is 4611686018427387904/);
    // 'names' is an array of strings: its length field follows key, type and item type.
    const namesAt = findKey(bytes, 'names') + 8 + 5 + 4 + 4;
    expectError(corrupt(bytes, (_, dv) => dv.setBigUint64(namesAt, 1n << 40n, true)), namesAt, /metadata 'names': the array length is 1099511627776/);
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  it('bad metadata values: unknown type, bool out of range, bad alignment, arrays nested too deep', () => {
    const flagType = findKey(bytes, 'flag') + 8 + 4;
    expectError(corrupt(bytes, (_, dv) => dv.setUint32(flagType, 13, true)), flagType, /metadata 'flag': unknown metadata value type 13/);
    expectError(corrupt(bytes, (x) => { x[flagType + 4] = 2; }), flagType + 4, /metadata 'flag': a bool must be 0 or 1, got 2/);
    const f1 = join(dir, `al${n++}.gguf`);
    writeGguf(f1, [['general.alignment', gv.u32(48)]], []);
    expectError(f1, 0, /general.alignment must be a power-of-two u32, got u32 48/);
    let deep: GgufArray = { type: 'array', itemType: 'u8', value: Uint8Array.of(1) };
    for (let i = 0; i < 9; i++) deep = { type: 'array', itemType: 'array', value: [deep] };
    const f2 = join(dir, `deep${n++}.gguf`);
    writeGguf(f2, [['deep', deep]], []);
    const at = keyOffset + 8 + 4 + 4 + 8 * 12; // eight levels of (item type u32 + length u64) in
    expectError(f2, at, /metadata 'deep': arrays nested more than 8 deep/);
  });

  it('duplicate keys and tensor names', () => {
    const f = join(dir, `dup${n++}.gguf`);
    writeGguf(f, [['k1', gv.u8(1)], ['k2', gv.u8(2)]], []);
    const two = new Uint8Array(readFileSync(f));
    const second = findKey(two, 'k2');
    expectError(corrupt(two, (x) => { x[second + 9] = '1'.charCodeAt(0); }), second, /duplicate metadata key 'k1'/);
    expectError(corrupt(bytes, (x) => { x[b.infoOffset + 8] = 'a'.charCodeAt(0); }), b.infoOffset, /tensor a: duplicate tensor name/, 'a');
  });

  it('random byte corruption of the header gives a GgufError or a readable file, never a crash', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.nat(layout.dataOffset - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), (edits) => {
      const file = corrupt(bytes, (x) => { for (const [i, v] of edits) x[i] = v; });
      try { GgufFile.open(file).close(); } catch (e) { expect(e).toBeInstanceOf(GgufError); }
    }), { numRuns: 300 });
  });

  it('files that cannot be opened', () => {
    expectError(join(dir, 'nope.gguf'), 0, /cannot open: no such file/);
    expectError(dir, 0, /not a regular file/);
  });
});

describe('binding a spec to a file', () => {
  const { file, layout } = valid();
  it('names the file, the tensor and the offset for a missing tensor, a wrong shape or an unloadable type', () => {
    const load = (params: { name: string; shape: number[] }[]) => () => GgufWeights.load(file, params);
    expect(load([{ name: 'blk.0.attn_q', shape: [4, 2] }])).toThrow(`${file}: byte ${layout.tensors[0].infoOffset}: tensor blk.0.attn_q.weight: missing: the spec's parameter blk.0.attn_q [4, 2] needs it`);
    expect(load([{ name: 'a', shape: [2, 4] }])).toThrow(`${file}: byte ${layout.tensors[0].infoOffset}: tensor a: has dims [4, 2], but the spec declares parameter a as [2, 4]`);
    const q5 = join(dir, `q5${n++}.gguf`);
    const l5 = writeGguf(q5, [], [{ name: 'w.weight', dims: [32], type: 'q5_0', raw: new Uint8Array(22) }]);
    expect(() => GgufWeights.load(q5, [{ name: 'w', shape: [32] }])).toThrow(`${q5}: byte ${l5.tensors[0].infoOffset}: tensor w.weight: type q5_0 cannot be loaded (supported: f32, f16, bf16, q8_0, q4_0, q4_K, q5_K, q6_K)`);
    expect(GgufWeights.load(file, [{ name: 'a', shape: [4, 2] }]).get('a')).toEqual(Float32Array.from({ length: 8 }, (_, i) => i));
  });
});

/** Byte offset of metadata entry `key` (its u64 length prefix) in a file's bytes. */
function findKey(bytes: Uint8Array, key: string): number {
  const k = new TextEncoder().encode(key);
  for (let i = keyOffset; i < bytes.length - k.length; i++) {
    if (bytes[i] === k.length && bytes[i + 1] === 0 && k.every((c, j) => bytes[i + 8 + j] === c)) return i;
  }
  throw new Error(`no key ${key}`);
}
