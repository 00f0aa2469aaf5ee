// The ordered pass list. Order matters: attention fuses first (its softmax is not a
// router's, and fuseMoe must not see it); norms fuse before residuals so a matmul
// can carry both a prologue and an epilogue; MoE fuses first, while its router is
// still a plain matmul and its residual add still a plain add; a matmul's epilogue fills in
// its order (bias, then softcap, then residual), after the prologues; q/k norms fold into
// their RoPE before the KV append takes K's RoPE. Every pass's output is verified.
import type { Graph } from './ir/graph.ts';
import { verify } from './ir/verify.ts';
import { fuseAttention } from './passes/fuseAttention.ts';
import { fuseKvAppend } from './passes/fuseKvAppend.ts';
import { fuseMoe } from './passes/fuseMoe.ts';
import { fuseNorm } from './passes/fuseNorm.ts';
import { fuseResidual } from './passes/fuseResidual.ts';
import { fuseSiluMul } from './passes/fuseSiluMul.ts';
import { fuseGeluMul } from './passes/fuseGeluMul.ts';
import { fuseBias } from './passes/fuseBias.ts';
import { fuseSoftcap } from './passes/fuseSoftcap.ts';
import { fuseQkNorm } from './passes/fuseQkNorm.ts';
import type { Pass } from './passes/pass.ts';

export const PIPELINE: readonly Pass[] = [fuseAttention, fuseMoe, fuseNorm, fuseSiluMul, fuseGeluMul, fuseBias, fuseSoftcap, fuseResidual, fuseQkNorm, fuseKvAppend];

export const FUSION_KEYS: readonly string[] = PIPELINE.map((p) => p.fuses);

export class PipelineOptionError extends Error {}

/** Parses `--no-fuse norm,residual` (or `all`) into the set of disabled fusion keys. */
export function parseNoFuse(list: string | undefined): Set<string> {
  if (!list) return new Set();
  const keys = list.split(',').map((s) => s.trim()).filter(Boolean);
  if (keys.includes('all')) return new Set(FUSION_KEYS);
  for (const k of keys) {
    if (!FUSION_KEYS.includes(k)) throw new PipelineOptionError(`unknown fusion '${k}' in --no-fuse; known: ${FUSION_KEYS.join(', ')}, all`);
  }
  return new Set(keys);
}

export function runPipeline(g: Graph, disabled: ReadonlySet<string> = new Set()): { graph: Graph; applied: string[] } {
  verify(g);
  const applied: string[] = [];
  let out = g;
  for (const pass of PIPELINE) {
    if (disabled.has(pass.fuses)) continue;
    out = pass.run(out);
    verify(out);
    applied.push(pass.name);
  }
  return { graph: out, applied };
}
