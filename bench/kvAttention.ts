// Attention time against context length: one decode token of one layer over a paged
// cache of 1k..32k tokens, per KV format, with and without the flash-decoding split.
// Times N dispatches in one command buffer (after a warm-up) and reports ms per
// dispatch, bytes read (compiler/cost.ts) and the bandwidth that implies.
import { kernelCost } from '../compiler/cost.ts';
import type { KvDType } from '../program/model.ts';
import { packKvTable, pageWords } from '../program/kv.ts';
import { kernelKey, type KernelSpec } from '../program/kernels.ts';
import { attentionSplits } from '../compiler/schedule.ts';
import { gridFor } from '../backends/backend.ts';
import { wgslBackend } from '../backends/wgsl/render.ts';
import { compileKernel, stepUniform, storageBuffer, zeroBuffer } from '../runtime/webgpu/device.ts';

export interface AttentionRow {
  /** fused: the PagedAttention kernel (+ merge); unfused: attn_scores, softmax, attn_values (--no-fuse attention). */
  readonly kernel: 'fused' | 'unfused';
  readonly context: number; readonly dtype: KvDType; readonly splits: number;
  readonly ms: number; readonly bytes_read: number; readonly gb_s: number;
}

const HEADS = 8, KV_HEADS = 2, HEAD_DIM = 64, PAGE = 16;

function randomWords(n: number, dtype: KvDType, seed: number): Float32Array | Uint32Array {
  let s = seed >>> 0;
  const next = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s; };
  if (dtype === 'f32') return Float32Array.from({ length: n }, () => next() / 4294967296 - 0.5);
  // Packed rows; keep f16 pairs and scales finite: small f16 values (exponent < 15) and a 1/64 scale pattern.
  return Uint32Array.from({ length: n }, () => (dtype === 'f16' ? (next() & 0x3bff3bff) : (next() & 0x3c7f7f7f)));
}

/** Times the kernels in order; `bind` renames a kernel's bindings onto `buffers` (default: the same name). */
async function timeKernels(device: GPUDevice, specs: KernelSpec[], buffers: Record<string, GPUBuffer>, reps: number, bind: Record<string, string>[] = []): Promise<number> {
  const kernels = await Promise.all(specs.map(async (spec, si) => {
    const [r] = wgslBackend.render(kernelKey(spec), spec);
    const pipeline = await compileKernel(device, r);
    const group = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: r.bindings.map((b, i) => ({ binding: i, resource: { buffer: b.access === 'uniform' ? stepUniform(device, 1) : buffers[bind[si]?.[b.name] ?? (b.name === 'out' && spec.kind === 'attention' && spec.splits > 1 ? 'part' : b.name)] } })),
    });
    const grid = gridFor(r.grid, 1);
    return { pipeline, group, grid };
  }));
  const run = async (n: number) => {
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    for (let i = 0; i < n; i++) for (const k of kernels) { pass.setPipeline(k.pipeline); pass.setBindGroup(0, k.group); pass.dispatchWorkgroups(...k.grid); }
    pass.end();
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
  };
  await run(1);
  const t0 = performance.now();
  await run(reps);
  return (performance.now() - t0) / reps;
}

/** Fused attention at every context (with and without split-K); the unfused kernels too up to `unfusedUpTo` tokens. */
export async function attentionVsContext(device: GPUDevice, contexts: readonly number[], dtypes: readonly KvDType[], log: (s: string) => void, unfusedUpTo = 8192): Promise<AttentionRow[]> {
  const rows: AttentionRow[] = [];
  for (const ctx of contexts) {
    const pages = Math.ceil(ctx / PAGE);
    // A shuffled page order, as a long-running pool would have.
    const order = Array.from({ length: pages }, (_, i) => (i * 7919) % pages);
    const table = packKvTable({ slots: Int32Array.of(ctx - 1), seqOf: Int32Array.of(0), indptr: Int32Array.of(0, pages), pages: Int32Array.from(order), lastLen: Int32Array.of(ctx - (pages - 1) * PAGE) });
    for (const dtype of dtypes) {
      const words = pages * pageWords({ kvHeads: KV_HEADS, headDim: HEAD_DIM, pageSize: PAGE, dtype });
      const bufs: Record<string, GPUBuffer> = {
        q: storageBuffer(device, randomWords(HEADS * HEAD_DIM, 'f32', 1) as Float32Array), positions: storageBuffer(device, Int32Array.of(ctx - 1)),
        kv_seq: storageBuffer(device, Int32Array.of(0)), kv_table: storageBuffer(device, table),
        kcache: storageBuffer(device, randomWords(words, dtype, 2)), vcache: storageBuffer(device, randomWords(words, dtype, 3)),
        out: zeroBuffer(device, HEADS * HEAD_DIM * 4), part: zeroBuffer(device, HEADS * 32 * (HEAD_DIM + 2) * 4),
      };
      for (const splits of [...new Set([1, attentionSplits(ctx)])]) {
        const spec: KernelSpec = { kind: 'attention', heads: HEADS, kvHeads: KV_HEADS, headDim: HEAD_DIM, pageSize: PAGE, dtype, scale: 0.125, window: null, causal: true, splits };
        const specs: KernelSpec[] = splits > 1 ? [spec, { kind: 'attention_merge', heads: HEADS, headDim: HEAD_DIM, splits }] : [spec];
        const reps = Math.max(3, Math.min(40, Math.round(4e5 / ctx)));
        const ms = await timeKernels(device, specs, bufs, reps);
        const bytes = specs.reduce((a, s) => a + kernelCost(s, 1, ctx).bytesRead, 0);
        rows.push({ kernel: 'fused', context: ctx, dtype, splits, ms, bytes_read: bytes, gb_s: bytes / ms / 1e6 });
        log(`  attention ctx ${ctx} ${dtype} splits ${splits}: ${ms.toFixed(2)} ms, ${(bytes / 1e6).toFixed(2)} MB`);
      }
      if (unfusedUpTo >= ctx) {
        // The unfused definition: scores [heads, ctx] and probabilities through memory.
        const mask = { heads: HEADS, kvHeads: KV_HEADS, headDim: HEAD_DIM, pageSize: PAGE, dtype, window: null, causal: true, context: ctx };
        const specs: KernelSpec[] = [{ kind: 'attn_scores', ...mask, scale: 0.125 }, { kind: 'softmax', width: ctx, rows: HEADS }, { kind: 'attn_values', ...mask }];
        bufs.scores = zeroBuffer(device, HEADS * ctx * 4);
        bufs.probs = zeroBuffer(device, HEADS * ctx * 4);
        const reps = Math.max(3, Math.min(20, Math.round(1e5 / ctx)));
        const ms = await timeKernels(device, specs, bufs, reps, [{ out: 'scores' }, { x: 'scores', out: 'probs' }, { p: 'probs' }]);
        const bytes = specs.reduce((a, s) => a + kernelCost(s, 1, ctx).bytesRead, 0);
        rows.push({ kernel: 'unfused', context: ctx, dtype, splits: 1, ms, bytes_read: bytes, gb_s: bytes / ms / 1e6 });
        log(`  unfused attention ctx ${ctx} ${dtype}: ${ms.toFixed(2)} ms, ${(bytes / 1e6).toFixed(2)} MB`);
      }
      for (const b of Object.values(bufs)) b.destroy();
    }
  }
  return rows;
}
