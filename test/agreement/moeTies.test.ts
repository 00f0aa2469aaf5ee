// MoE routing ties against llama.cpp: Mixtral-style f32 files whose routers copy
// columns (cases.ts, TIED_ROUTER_CASES), so that experts have exactly equal scores and
// the top-k rule for equal scores decides which experts run, at the k-th place too.
// llama.cpp's CPU backend sorts the scores with libstdc++'s std::sort (index order among
// equal scores up to 16 experts, introsort's order above); infer reproduces that order
// (compiler/ir/moe.ts, llamaArgsort; the WGSL moe_route kernel). For each file: every
// next-token distribution (prefill and decode) within 1e-4 in log-probability and the
// greedy tokens identical, on the CPU and the WebGPU engine; and, from the
// interpreter's router scores over the same tokens, the count of (token, layer) rows
// where equal scores straddle the k-th place, which must be nonzero (and, above 16
// experts, rows where index order would have chosen other experts).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wgslBackend } from '../../backends/wgsl/render.ts';
import { importGguf } from '../../cli/importSpec.ts';
import { CpuKvCache, interpret, type Graph } from '../../compiler/ir/index.ts';
import { llamaArgsort } from '../../compiler/ir/moe.ts';
import { CpuEngine } from '../../runtime/cpu/engine.ts';
import type { Engine } from '../../runtime/engine.ts';
import { GgufWeights } from '../../runtime/weights/gguf.ts';
import { createGpuDevice } from '../../runtime/webgpu/device.ts';
import { WebGpuEngine } from '../../runtime/webgpu/engine.ts';
import { TIED_ROUTER_CASES } from './cases.ts';
import { compileImported, runInfer, runLlamaCpp, writeTiedRouterGguf } from './harness.ts';
import { check, promptFor, type Row } from './suite.ts';

const TOKENS = 32;

/** Over every (token, layer): rows where a tie straddles the k-th place, and rows where llama.cpp's order picks other experts than index order would. */
function tieCounts(graph: Graph, weights: GgufWeights, sequence: readonly number[]): { straddle: number; notIndexOrder: number } {
  const m = graph.model;
  const tokens = Int32Array.from(sequence), positions = Int32Array.from(sequence, (_, i) => i);
  const vals = interpret(graph, weights, new CpuKvCache(m.layers, m.kvHeads, m.headDim, m.maxContext), { tokens, positions });
  let straddle = 0, notIndexOrder = 0;
  for (const r of graph.nodes.filter((n) => n.op === 'moe_route')) {
    const [K, E] = r.src[1].shape as number[];
    const k = r.shape[1] as number;
    const h = vals.get(r.src[0])!, router = vals.get(r.src[1])!;
    for (let t = 0; t < tokens.length; t++) {
      const logits = Float64Array.from({ length: E }, (_, e) => { let a = 0; for (let i = 0; i < K; i++) a += h[t * K + i] * router[e * K + i]; return a; });
      const llama = Array.from(llamaArgsort(logits, 0, E)); // softmax keeps the order and the ties
      const index = Array.from({ length: E }, (_, e) => e).sort((a, b) => logits[b] - logits[a] || a - b);
      if (k < E && logits[index[k - 1]] === logits[index[k]]) straddle++;
      const chosen = new Set(index.slice(0, k));
      if (llama.slice(0, k).some((e) => !chosen.has(e))) notIndexOrder++;
    }
  }
  return { straddle, notIndexOrder };
}

describe('llama.cpp agreement on routers with exact ties', () => {
  const dir = mkdtempSync(join(tmpdir(), 'infer-ties-'));
  const rows: (Row & { ties: string })[] = [];
  let device: GPUDevice;
  beforeAll(async () => { device = await createGpuDevice(); }, 120_000);
  afterAll(() => {
    device?.destroy();
    rmSync(dir, { recursive: true, force: true });
    const fmt = (x: number) => x.toExponential(2);
    console.log('MoE ties: max |logprob infer - llama.cpp|, greedy agreement, tie rows\n' + rows.map((r) =>
      `  ${r.label.padEnd(44)} ${r.engine.padEnd(6)} prefill ${fmt(r.prefill)}  decode ${fmt(r.decode)}  greedy ${r.greedy}  ${r.ties}`).join('\n'));
  });

  for (const c of TIED_ROUTER_CASES) {
    it(c.label, async () => {
      const file = join(dir, `${c.label.replace(/[^A-Za-z0-9]+/g, '_')}.gguf`);
      writeTiedRouterGguf(file, c);
      const prompt = promptFor(c);
      const ref = await runLlamaCpp(file, c.vocab, prompt, TOKENS);
      expect(ref.greedy).toHaveLength(TOKENS);
      const sequence = [...prompt, ...ref.greedy.slice(0, -1)];
      const { graph, program } = compileImported(importGguf(file));
      const weights = GgufWeights.load(file, program.params);

      const ties = tieCounts(graph, weights, sequence);
      const of = sequence.length * c.layers;
      expect(ties.straddle, `${c.label}: rows where equal scores straddle the k-th place`).toBeGreaterThan(0);
      if (c.experts > 16) expect(ties.notIndexOrder, `${c.label}: rows where index order would choose other experts`).toBeGreaterThan(0);
      else expect(ties.notIndexOrder).toBe(0);

      const engines: [string, () => Promise<Engine>][] = [
        ['cpu', async () => new CpuEngine(graph, weights, program)],
        ['webgpu', () => WebGpuEngine.create({ device, program, backend: wgslBackend, weights })],
      ];
      for (const [kind, make] of engines) {
        const engine = await make();
        try {
          const got = await runInfer(engine, prompt, TOKENS, sequence);
          const before = rows.length;
          try {
            check(c, kind, ref, got, prompt.length, rows as Row[], TOKENS);
          } finally {
            for (let i = before; i < rows.length; i++) rows[i].ties = `straddle ${ties.straddle}/${of}, not index order ${ties.notIndexOrder}/${of}`;
          }
        } finally {
          engine.dispose();
        }
      }
    });
  }
});
