// A streamed param upload (runtime/runner/paramUpload.ts: a GGUF tensor read a chunk at a
// time, repacked per chunk and written at its offsets) leaves exactly the bytes the
// whole-tensor upload leaves (the tensor read at once and repacked by program/quant.ts),
// for every compact type, whole params and split parts, and chunks down to one unit. The
// device here is host memory that enforces WebGPU's writeBuffer rules (4-byte offsets and
// sizes, inside the buffer), so a misaligned or overlong chunk write fails the test.
import fc from 'fast-check';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { BufferDecl } from '../../program/program.ts';
import { blockElements, deviceWords, type CompactType } from '../../program/quant.ts';
import type { WeightSource } from '../../program/weights.ts';
import type { Device, DeviceBuffer } from '../../runtime/runner/device.ts';
import { ParamUploader } from '../../runtime/runner/paramUpload.ts';
import { GgufWeights } from '../../runtime/weights/gguf.ts';
import { writeGguf } from '../../runtime/weights/ggufWriter.ts';
import { randomTensor } from '../../runtime/weights/random.ts';

const dir = mkdtempSync(join(tmpdir(), 'infer-upload-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface HostBuf extends DeviceBuffer { readonly data: Uint8Array }

/** Host memory with WebGPU's writeBuffer rules; counts uploads and settles. */
function hostDevice() {
  const stats = { uploads: 0, settles: 0 };
  const device = {
    allocate: (label: string, bytes: number): HostBuf => ({ label, bytes, data: new Uint8Array(bytes) }),
    upload(buffer: DeviceBuffer, offset: number, data: ArrayBufferView) {
      const b = buffer as HostBuf;
      if (offset % 4 !== 0 || data.byteLength % 4 !== 0) throw new Error(`unaligned write of ${data.byteLength} bytes at ${offset}`);
      if (offset + data.byteLength > b.bytes) throw new Error(`write of ${data.byteLength} bytes at ${offset} past the buffer's ${b.bytes}`);
      b.data.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), offset);
      stats.uploads++;
    },
    async settle() { stats.settles++; },
  } as unknown as Device & { allocate(label: string, bytes: number): HostBuf };
  return { device, stats };
}

/** The source without byte ranges: the uploader reads each tensor whole (the path this is checked against). */
const wholeOnly = (w: GgufWeights): WeightSource => ({ get: (n) => w.get(n), getRaw: (n) => w.getRaw(n), evict: (n) => w.evict(n) });

const TYPES: CompactType[] = ['f16', 'q8_0', 'q4_0', 'q4_K', 'q5_K', 'q6_K'];

describe('streamed param upload', () => {
  it('writes the same device bytes as the whole-tensor upload, for whole params and parts, at any chunk size', async () => {
    let n = 0;
    await fc.assert(fc.asyncProperty(
      fc.constantFrom(...TYPES), fc.constantFrom(false, true), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 0, max: 1 << 20 }), fc.integer({ min: 1, max: 5000 }),
      async (type, bf16, kUnits, N, parts, seed, chunkBytes) => {
        // bf16 files are kept as f16 on the device (converted per chunk when streamed).
        const fileType = type === 'f16' && bf16 ? 'bf16' : type;
        const K = kUnits * (type === 'f16' ? 8 : blockElements(type));
        const file = join(dir, `t${n++}.gguf`);
        writeGguf(file, [], [{ name: 'w.weight', dims: [K, N], type: fileType, data: randomTensor('w', [K, N], seed) }]);
        const params = [{ name: 'w', shape: [K, N] }];
        // Columns in `parts` consecutive parts (or one whole buffer), as compiler/splitParams.ts lays them out.
        const count = Math.ceil(N / Math.min(parts, N));
        const decls: BufferDecl[] = [];
        for (let first = 0; first < N; first += count) {
          const c = Math.min(count, N - first);
          decls.push({ name: parts === 1 ? 'param:w' : `param:w#${first}`, kind: 'param', dtype: type, perToken: 0, elements: K * c, ...(parts === 1 ? {} : { part: { of: 'w', first, count: c } }) });
        }
        const run = async (streamed: boolean) => {
          const events: { index: number; count: number; bytes: number; totalBytes: number }[] = [];
          const w = GgufWeights.load(file, params, { onProgress: (p) => events.push(p) });
          const { device, stats } = hostDevice();
          const up = new ParamUploader(device, streamed ? w : wholeOnly(w), chunkBytes);
          const bufs = decls.map((d) => device.allocate(d.name, 4 * deviceWords(type, d.elements)));
          for (let i = 0; i < decls.length; i++) await up.upload(bufs[i], decls[i]);
          up.finish();
          w.release();
          return { bytes: bufs.map((b) => b.data), stats, events };
        };
        const whole = await run(false), streamed = await run(true);
        expect(streamed.bytes).toEqual(whole.bytes);
        // The chunks really were chunks: at least one upload per unit-rounded chunk of each buffer.
        expect(streamed.stats.uploads).toBeGreaterThanOrEqual(whole.stats.uploads);
        // Progress: bytes only grow, and "all tensors read" is said once, at the end, with every byte counted.
        for (const r of [whole, streamed]) {
          expect(r.events.filter((e) => e.index === e.count)).toHaveLength(1);
          expect(r.events.at(-1)).toMatchObject({ index: 1, count: 1, bytes: r.events[0].totalBytes });
          expect(r.events.every((e, i) => i === 0 || e.bytes > r.events[i - 1].bytes)).toBe(true);
        }
      }), { numRuns: 60 });
  });

  it('reads a byte range of a tensor, refuses one outside it, and counts progress once per byte', () => {
    const file = join(dir, 'range.gguf');
    writeGguf(file, [], [{ name: 'w.weight', dims: [64, 4], type: 'q8_0', data: randomTensor('w', [64, 4], 2) }]);
    const seen: { index: number; bytes: number }[] = [];
    const w = GgufWeights.load(file, [{ name: 'w', shape: [64, 4] }], { onProgress: (p) => seen.push({ index: p.index, bytes: p.bytes }) });
    const whole = w.getRaw('w').bytes;
    const part = new Uint8Array(40);
    expect(w.readRawInto('w', 100, part)).toBe('q8_0');
    expect(part).toEqual(whole.subarray(100, 140));
    expect(() => w.readRawInto('w', whole.length - 8, new Uint8Array(16))).toThrow(/bytes 264\.\.280 asked of a tensor of 272 bytes/);
    // The whole read counted every byte once; the range read after it added nothing.
    expect(seen).toEqual([{ index: 1, bytes: 272 }]);
    w.release();
  });

  it('refuses a file whose tensor type differs from the program\'s', async () => {
    const file = join(dir, 'mismatch.gguf');
    writeGguf(file, [], [{ name: 'w.weight', dims: [64, 4], type: 'q8_0', data: randomTensor('w', [64, 4], 1) }]);
    const w = GgufWeights.load(file, [{ name: 'w', shape: [64, 4] }]);
    const { device } = hostDevice();
    const d: BufferDecl = { name: 'param:w', kind: 'param', dtype: 'q4_0', perToken: 0, elements: 256 };
    await expect(new ParamUploader(device, w, 64).upload(device.allocate('w', 4 * deviceWords('q4_0', 256)), d)).rejects.toThrow(/keeps weight w as q4_0, but the weight file stores it as q8_0/);
    w.release();
  });
});
