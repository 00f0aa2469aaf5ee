// The runner's --serve protocol (backends/cuda/runner/serve.h) on the CPU emulation: the
// CudaDevice's errors for what the runner refuses (each a DeviceError naming it, the runner
// still serving), copies and readbacks byte for byte, the build cache, and a fuzz of raw
// byte streams (random, structured-but-wrong, truncated and oversized frames) that must
// each end in one reply per whole frame and a clean exit, never a crash or a hang.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cudaBackend } from '../../backends/cuda/render.ts';
import { SERVE_PROTOCOL } from '../../backends/cuda/runner/serveTable.ts';
import { compileSpec } from '../../compiler/compile.ts';
import type { Program } from '../../program/program.ts';
import { buildServeRunner, hasCudaGpu, type BuiltRunner } from '../../runtime/cuda/build.ts';
import { CudaDevice } from '../../runtime/cuda/device.ts';
import { encodeRequest, OPS, utf8, type Field, type Op } from '../../runtime/cuda/protocol.ts';
import { DeviceError } from '../../runtime/runner/device.ts';
import { cli } from '../cli/runCli.ts';

const SPEC = 'examples/tiny-llama.infer';
const cache = mkdtempSync(join(tmpdir(), 'infer-cuda-protocol-'));
let program: Program;
let built: BuiltRunner;

beforeAll(async () => {
  const c = compileSpec(readFileSync(SPEC, 'utf8'), SPEC, {});
  if (!c.program) throw new Error(`${SPEC} does not compile`);
  program = c.program;
  built = await buildServeRunner([program], cudaBackend, 'emu', cache);
}, 600_000);
afterAll(() => rmSync(cache, { recursive: true, force: true }));

/** A device on a fresh runner, closed after `body`. */
async function withDevice<T>(body: (d: CudaDevice) => Promise<T>): Promise<T> {
  const d = await CudaDevice.open(built.binary);
  try { return await body(d); } finally { await d.close(); }
}

const firstKernel = () => cudaBackend.render(program.kernels[0].key, program.kernels[0].spec)[0];

describe('CudaDevice over runner-emu --serve', () => {
  it('a second build of the same program is the cached one', async () => {
    const again = await buildServeRunner([program], cudaBackend, 'emu', cache);
    expect(again).toEqual({ ...built, cached: true });
  });

  it('says which compiler is missing when it cannot build', async () => {
    const saved = process.env.CXX;
    process.env.CXX = '/nonexistent/g++';
    const empty = mkdtempSync(join(tmpdir(), 'infer-cuda-nocxx-'));
    try {
      await expect(buildServeRunner([program], cudaBackend, 'emu', empty)).rejects.toThrow(/needs a C\+\+17 compiler: '\/nonexistent\/g\+\+' was not found \(install g\+\+ or set CXX\)/);
    } finally {
      if (saved === undefined) delete process.env.CXX; else process.env.CXX = saved;
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('infer run --backend cuda-emu, and cuda where nvidia-smi finds no GPU, start the runner built above (the cache\'s one build)', async () => {
    const saved = { cache: process.env.INFER_CUDA_CACHE, runner: process.env.INFER_CUDA_RUNNER };
    process.env.INFER_CUDA_CACHE = cache;
    delete process.env.INFER_CUDA_RUNNER;
    try {
      const args = ['--tokens', '1,2,3', '--max-tokens', '6', '--ignore-eos', '--json', '--no-speculative'];
      const cpu = await cli('run', SPEC, '--backend', 'cpu', ...args);
      const gpu = hasCudaGpu();
      for (const backend of gpu ? ['cuda-emu'] : ['cuda-emu', 'cuda']) {
        const cuda = await cli('run', SPEC, '--backend', backend, ...args);
        expect(cuda.code, cuda.err).toBe(0);
        expect((JSON.parse(cuda.out) as { tokens: number[] }).tokens).toEqual((JSON.parse(cpu.out) as { tokens: number[] }).tokens);
      }
      expect(readdirSync(cache)).toEqual([basename(built.dir)]);
    } finally {
      for (const [k, v] of [['INFER_CUDA_CACHE', saved.cache], ['INFER_CUDA_RUNNER', saved.runner]] as const) if (v === undefined) delete process.env[k]; else process.env[k] = v;
    }
  });

  it('says what it is, copies and reads back bytes exactly, and keeps serving after a refused submission', async () => {
    await withDevice(async (d) => {
      expect(d.description).toMatch(/emulation/);
      expect(d.limits.maxGroupsPerDim).toBe(65535);
      const a = d.allocate('a', 64, 'storage'), b = d.allocate('b', 64, 'storage');
      const data = Uint8Array.from({ length: 40 }, (_, i) => (i * 37 + 11) & 255);
      d.upload(a, 8, data);
      await expect(d.submit({ copies: [], dispatches: [], readbacks: [{ buffer: a, offset: 60, bytes: 8 }] })).rejects.toThrow(/readback of 8 bytes at 60 is outside buffer 'a'/);
      const r = await d.submit({ copies: [{ from: a, fromOffset: 8, to: b, toOffset: 16, bytes: 40 }], dispatches: [], readbacks: [{ buffer: b, offset: 0, bytes: 64 }, { buffer: a, offset: 0, bytes: 8 }] });
      expect(Array.from(r.data[0])).toEqual([...new Array<number>(16).fill(0), ...data, ...new Array<number>(8).fill(0)]);
      expect(Array.from(r.data[1])).toEqual(new Array<number>(8).fill(0));
      await expect(d.submit({ copies: [{ from: a, fromOffset: 0, to: a, toOffset: 8, bytes: 16 }], dispatches: [], readbacks: [] })).rejects.toThrow(/overlap/);
    });
  });

  it('refuses a kernel it was not built with, or a different rendering of one it was', async () => {
    await withDevice(async (d) => {
      const k = firstKernel();
      await expect(d.compile({ ...k, key: 'no_such_kernel' })).rejects.toThrow(/has no kernel no_such_kernel/);
      await expect(d.compile({ ...k, source: `${k.source}\n// changed` })).rejects.toThrow(/differs from the rendering this runner was built from/);
      const compiled = await d.compile(k);
      expect(compiled.rendered).toBe(k);
    });
  });

  it('raises an error answered to an unawaited call (upload, bind) at the next settle, as a DeviceError', async () => {
    await withDevice(async (d) => {
      d.upload(d.allocate('small', 16, 'storage'), 12, new Uint8Array(8));
      await expect(d.settle()).rejects.toThrow(DeviceError);
      await expect(d.settle()).rejects.toThrow(/upload to 'small': upload of 8 bytes at 12 is outside buffer 'small'/);
    });
    await withDevice(async (d) => {
      const k = await d.compile(firstKernel());
      d.bind(k, [d.allocate('x', 16, 'storage')]);
      await expect(d.settle()).rejects.toThrow(/binds \d+ buffers, not 1/);
    });
  });

  it('rejects everything once the runner has exited, naming its status or signal', async () => {
    const d = await CudaDevice.open(built.binary);
    await d.close();
    await expect(d.compile(firstKernel())).rejects.toThrow(/exited \(status 0\)/);
    const killed = await CudaDevice.open(built.binary);
    process.kill(killed.pid!, 'SIGKILL');
    await expect(killed.settle()).rejects.toThrow(/exited \(signal SIGKILL\)/);
    await killed.close();
  });
});

/** Runs the raw runner on `input` (stdin then EOF); fails the test if it has not exited within 30 s. */
function serveRaw(input: Uint8Array): Promise<{ code: number | null; signal: string | null; out: Buffer; err: string }> {
  // Address space capped, so a fuzzed allocation of up to the 2 GiB limit fails as an error frame rather than filling memory.
  const child = spawn('sh', ['-c', 'ulimit -v 400000; exec "$0" --serve', built.binary], { stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let err = '';
  child.stdout.on('data', (c: Buffer) => out.push(c));
  child.stderr.on('data', (c: Buffer) => { err += c.toString(); });
  child.stdin.on('error', () => {});
  child.stdin.end(input);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error('the runner hung on a fuzzed input')); }, 30_000);
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, out: Buffer.concat(out), err }); });
  });
}

/** Reply frames of a stdout stream; throws if it holds anything else. */
function replies(out: Buffer): number[] {
  const status: number[] = [];
  let at = 0;
  while (at < out.length) {
    if (out.length - at < 5) throw new Error(`stdout ends with ${out.length - at} stray bytes`);
    const len = out.readUInt32LE(at);
    if (len < 1 || at + 4 + len > out.length) throw new Error(`a reply frame of ${len} bytes overruns stdout`);
    status.push(out[at + 4]);
    at += 4 + len;
  }
  return status;
}

const opArb = fc.integer({ min: 0, max: 10 });
/** Fields of the sizes the requests use, with values near the ids and sizes a session has. */
const fieldArb: fc.Arbitrary<Field> = fc.oneof(
  fc.integer({ min: 0, max: 255 }).map((u8) => ({ u8 })),
  fc.oneof(fc.integer({ min: 0, max: 6 }), fc.nat()).map((u32) => ({ u32 })),
  fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })).map((u64) => ({ u64 })),
  fc.uint8Array({ maxLength: 24 }).map((bytes) => ({ bytes })),
);
const id = fc.integer({ min: 0, max: 3 });
const small = fc.integer({ min: 0, max: 300 });
/**
 * Frames a session sends, well formed but with ids and ranges that may be wrong, so the
 * fuzz reaches allocation, upload, copy, readback and free, not only the parser. No compile
 * names a kernel with its true hash, so no binding exists and no kernel runs on fuzzed buffers.
 */
const sessionFrameArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(id, fc.constantFrom(0, 0, 1, 2), small, fc.string({ maxLength: 8 })).map(([i, use, bytes, label]) =>
    encodeRequest(OPS.allocate, [{ u32: i }, { u8: use }, { u64: bytes }, { bytes: utf8(label) }])) },
  { weight: 2, arbitrary: fc.tuple(id, small, fc.uint8Array({ maxLength: 32 })).map(([i, offset, bytes]) => encodeRequest(OPS.upload, [{ u32: i }, { u64: offset }, { bytes }])) },
  id.map((i) => encodeRequest(OPS.free, [{ u32: i }])),
  fc.tuple(
    fc.array(fc.tuple(id, small, id, small, fc.integer({ min: 0, max: 64 })), { maxLength: 2 }),
    fc.array(fc.tuple(id, fc.integer({ min: 0, max: 70000 })), { maxLength: 1 }),
    fc.array(fc.tuple(id, small, fc.integer({ min: 0, max: 64 })), { maxLength: 3 }),
    fc.boolean(),
  ).map(([copies, dispatches, readbacks, timed]): Uint8Array => encodeRequest(OPS.submit, [
    { u32: copies.length }, { u32: dispatches.length }, { u32: readbacks.length }, { u8: timed ? 1 : 0 },
    ...copies.flatMap(([f, fo, t, to, n]): Field[] => [{ u32: f }, { u64: fo }, { u32: t }, { u64: to }, { u64: n }]),
    ...dispatches.flatMap(([b, g]): Field[] => [{ u32: b }, { u32: g }, { u32: 1 }, { u32: 1 }]),
    ...readbacks.flatMap(([b, o, n]): Field[] => [{ u32: b }, { u64: o }, { u64: n }]),
  ])),
  fc.tuple(id, fc.nat()).map(([i, hash]) => {
    const k = firstKernel();
    return encodeRequest(OPS.compile, [{ u32: i }, { u32: k.minTokens }, { u32: hash }, { u64: k.source.length }, { bytes: utf8(k.key) }]);
  }),
  fc.tuple(id, id, fc.array(id, { maxLength: 4 })).map(([i, k, ids]) => encodeRequest(OPS.bind, [{ u32: i }, { u32: k }, { u32: ids.length }, ...ids.map((u32) => ({ u32 }))])),
  fc.constant(encodeRequest(OPS.hello, [])),
);
const frameArb = fc.oneof(
  { weight: 4, arbitrary: sessionFrameArb },
  fc.tuple(opArb, fc.array(fieldArb, { maxLength: 14 })).map(([op, fields]) => encodeRequest(op as Op, fields)),
  // Any bytes behind a length that counts them (an empty frame included).
  fc.uint8Array({ maxLength: 40 }).map((bytes) => Uint8Array.from([...new Uint8Array(new Uint32Array([bytes.length]).buffer), ...bytes])),
);
type Tail = { kind: 'none' } | { kind: 'truncated'; frame: Uint8Array; keep: number } | { kind: 'oversized' };
const tailArb: fc.Arbitrary<Tail> = fc.oneof(
  fc.constant<Tail>({ kind: 'none' }),
  fc.tuple(frameArb, fc.nat()).map(([frame, n]): Tail => ({ kind: 'truncated', frame, keep: 1 + (n % (frame.length - 1)) })),
  fc.constant<Tail>({ kind: 'oversized' }),
);

describe('runner-emu --serve on fuzzed input', () => {
  it('answers every whole frame with one reply frame, and exits 0 at EOF or shutdown, 2 after a torn or oversized frame', async () => {
    let ok = 0;
    await fc.assert(fc.asyncProperty(fc.array(frameArb, { maxLength: 24, size: 'max' }), tailArb, async (frames, tail) => {
      const isShutdown = (f: Uint8Array) => f.length === 5 && f[4] === OPS.shutdown;
      const stop = frames.findIndex(isShutdown);
      const answered = stop >= 0 ? stop + 1 : frames.length;
      const tailBytes = tail.kind === 'truncated' ? tail.frame.subarray(0, tail.keep)
        : tail.kind === 'oversized' ? Uint8Array.from([0xf0, 0xff, 0xff, 0xff, OPS.upload]) : new Uint8Array(0);
      const input = Uint8Array.from([...frames.flatMap((f) => [...f]), ...tailBytes]);
      const r = await serveRaw(input);
      expect(r.signal, r.err).toBeNull();
      const status = replies(r.out);
      const torn = stop < 0 && tail.kind !== 'none';
      expect(status.length, r.err).toBe(answered + (torn ? 1 : 0));
      for (const s of status) expect([SERVE_PROTOCOL.status.ok, SERVE_PROTOCOL.status.error]).toContain(s);
      ok += status.filter((s) => s === SERVE_PROTOCOL.status.ok).length;
      if (torn) expect(status.at(-1)).toBe(SERVE_PROTOCOL.status.error);
      expect(r.code, r.err).toBe(torn ? 2 : 0);
    }), { numRuns: 60 });
    // The sessions did things (allocations, uploads, copies, readbacks), not only fail to parse.
    expect(ok).toBeGreaterThan(60);
  }, 300_000);
});
