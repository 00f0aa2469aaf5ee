// rmsnorm -> matmul becomes one matmul whose prologue normalises its input row.
// The norm's output is never written to memory; each matmul that reads it
// recomputes the row's inverse RMS (K reads, cheap next to K*N weight reads).
import { rewrite, type Node } from '../ir/graph.ts';
import type { OpArgs } from '../ir/ops.ts';
import type { Pass } from './pass.ts';

export const fuseNorm: Pass = {
  name: 'fuseNorm',
  fuses: 'norm',
  summary: 'fold rmsnorm into the prologue of every matmul that reads it',
  run: (g) => rewrite(g, (n, src, b) => {
    if (n.op !== 'matmul') return undefined;
    const input = src[0];
    if (input.op !== 'rmsnorm') return undefined;
    const eps = (input.arg as OpArgs['rmsnorm']).eps;
    return b.node('fused_matmul', { prologue: 'rmsnorm', eps, residual: false }, [input.src[0], input.src[1], src[1]]) as Node;
  }),
};
