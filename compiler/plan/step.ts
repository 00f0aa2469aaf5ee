// Bytes and FLOPs of a decode step and of prefill, from the Program's dispatch list
// (compiler/cost.ts kernelCost per step), and the roofline time on a device: a step
// takes at least bytes / bandwidth and at least flops / rate, and whichever is larger
// binds. A batch of B sequences decoding together reads every weight once but each
// sequence's own KV, so attention kernels are costed per sequence.
import type { KernelSpec } from '../../program/kernels.ts';
import type { Program } from '../../program/program.ts';
import { kernelCost } from '../cost.ts';

export interface StepTotals {
  readonly bytesRead: number;
  readonly bytesWritten: number;
  readonly flops: number;
  /** Of bytesRead: what the expert kernels read (moe_experts), for expert parallelism. */
  readonly expertBytes: number;
  readonly dispatches: number;
}

/** Kernels whose reads are per sequence (each reads its own KV pages). */
const PER_SEQUENCE: ReadonlySet<KernelSpec['kind']> = new Set(['attention', 'attn_scores', 'attn_values']);

/**
 * One forward over `batch` sequences of `tokensPerSeq` new tokens each, the last of which
 * sits at position context-1 (decode: tokensPerSeq = 1; speculative verify: K + 1).
 */
export function batchStepCost(p: Program, batch: number, tokensPerSeq: number, context: number): StepTotals {
  const specs = new Map(p.kernels.map((k) => [k.key, k.spec]));
  let bytesRead = 0, bytesWritten = 0, flops = 0, expertBytes = 0;
  for (const s of p.steps) {
    const spec = specs.get(s.kernel)!;
    const c = PER_SEQUENCE.has(spec.kind) ? scale(kernelCost(spec, tokensPerSeq, context), batch) : kernelCost(spec, batch * tokensPerSeq, context);
    bytesRead += c.bytesRead; bytesWritten += c.bytesWritten; flops += c.flops;
    if (spec.kind === 'moe_experts') expertBytes += c.bytesRead;
  }
  return { bytesRead, bytesWritten, flops, expertBytes, dispatches: p.steps.length };
}

const scale = (c: { bytesRead: number; bytesWritten: number; flops: number }, n: number) => ({ bytesRead: c.bytesRead * n, bytesWritten: c.bytesWritten * n, flops: c.flops * n });

/** Prefill of one `context`-token prompt in forwards of at most `chunk` tokens: the sum over the chunks. */
export function prefillCost(p: Program, context: number, chunk: number): StepTotals & { forwards: number } {
  let bytesRead = 0, bytesWritten = 0, flops = 0, expertBytes = 0, forwards = 0;
  for (let start = 0; start < context; start += chunk) {
    const T = Math.min(chunk, context - start);
    const c = batchStepCost(p, 1, T, start + T);
    bytesRead += c.bytesRead; bytesWritten += c.bytesWritten; flops += c.flops; expertBytes += c.expertBytes;
    forwards++;
  }
  return { bytesRead, bytesWritten, flops, expertBytes, dispatches: forwards * p.steps.length, forwards };
}

export interface Roof {
  /** Bytes per second the step can stream, and FLOP per second it can compute. */
  readonly bandwidth: number;
  readonly flops: number;
}

export interface RooflineTime {
  readonly seconds: number;
  readonly memorySeconds: number;
  readonly computeSeconds: number;
  readonly bottleneck: 'memory' | 'compute';
  /** FLOP per byte read. */
  readonly intensity: number;
}

/** The roofline lower bound on a step's time (memory and compute not overlapping would be the sum; the bound is the max). */
export function rooflineTime(bytes: number, flops: number, roof: Roof): RooflineTime {
  const memorySeconds = bytes / roof.bandwidth, computeSeconds = flops / roof.flops;
  return {
    seconds: Math.max(memorySeconds, computeSeconds), memorySeconds, computeSeconds,
    bottleneck: memorySeconds >= computeSeconds ? 'memory' : 'compute', intensity: bytes > 0 ? flops / bytes : 0,
  };
}

/** FLOP per byte at which the device's two limits meet (the roofline's ridge point). */
export const ridgePoint = (roof: Roof): number => roof.flops / roof.bandwidth;

export interface SpeculativeReport {
  readonly lookahead: number;
  readonly acceptance: number;
  /** (1 - a^(K+1)) / (1 - a): tokens one target pass yields on average (K + 1 when a = 1). */
  readonly expectedTokensPerPass: number;
  readonly draft: string;
  readonly draftStepSeconds: number;
  readonly verifySeconds: number;
  readonly passSeconds: number;
  readonly tokensPerS: number;
  readonly speedup: number;
}

/** Expected tokens per verify pass when each drafted token is accepted with probability a, independently. */
export function expectedTokensPerPass(a: number, K: number): number {
  return a === 1 ? K + 1 : (1 - a ** (K + 1)) / (1 - a);
}

/**
 * Speculative decoding at this shape: K draft steps then one target pass over K + 1 tokens
 * per sequence; a pass yields expectedTokensPerPass tokens. The draft's step is costed from
 * its own Program on the same roof (0 for a proposer without a model: n-gram lookup).
 */
export function speculative(target: Program, draft: { name: string; program: Program | null }, o: { batch: number; context: number; lookahead: number; acceptance: number; roof: Roof }): SpeculativeReport {
  const { batch: B, context: C, lookahead: K, acceptance: a, roof } = o;
  const one = batchStepCost(target, B, 1, C);
  const plain = rooflineTime(one.bytesRead, one.flops, roof).seconds;
  const v = batchStepCost(target, B, K + 1, C);
  const verifySeconds = rooflineTime(v.bytesRead, v.flops, roof).seconds;
  const d = draft.program ? batchStepCost(draft.program, B, 1, C) : null;
  const draftStepSeconds = d ? rooflineTime(d.bytesRead, d.flops, roof).seconds : 0;
  const passSeconds = verifySeconds + K * draftStepSeconds;
  const E = expectedTokensPerPass(a, K);
  const tokensPerS = (B * E) / passSeconds;
  return { lookahead: K, acceptance: a, expectedTokensPerPass: E, draft: draft.name, draftStepSeconds, verifySeconds, passSeconds, tokensPerS, speedup: tokensPerS / (B / plain) };
}
