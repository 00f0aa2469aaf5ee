// Params larger than one device buffer may be: split into column blocks. WebGPU binds at
// most maxStorageBufferBindingSize bytes of a buffer (128 MiB by default, and on lavapipe)
// and allocates at most maxBufferSize (256 MiB): TinyLlama's embedding table as f32 is 250
// MiB, Llama 3's output projection 2 GiB. A [K, N] param is stored as N rows of K weights
// (element (k, n) at n*K + k, and a block type's blocks run along K), so a range of columns
// is a contiguous range of the file's tensor and a [K, count] tensor of the same type:
// every part is a param buffer of its own (BufferDecl.part), and the op that reads the
// param becomes one dispatch per part (schedule.ts): a matmul computes its part's output
// columns into the shared output rows, an embedding writes the rows of the token ids its
// part holds. Splitting along K (a single column over the limit, K > 32M f32 weights) is
// not needed by any model and is refused, as is any other op reading a param this large
// (a norm weight, an elementwise operand, a 3-D expert weight).
//
// The parts are as equal as the limit allows (ceil(N / P) columns, P the fewest parts
// that fit), so a tied embedding and output projection, which are one param, split once.
import type { Graph, Node } from './ir/graph.ts';
import type { OpArgs } from './ir/ops.ts';
import { bufferBytes, bufferCap, type BufferLimits, type ParamPart } from '../program/program.ts';
import type { CompactType } from '../program/quant.ts';

export class SplitError extends Error {}

const MiB = 1024 * 1024;
const mib = (n: number): string => `${(n / MiB).toFixed(1)} MiB`;

/** The operand index at which `n` reads a weight it can read in column parts, if any. */
function splittableOperand(n: Node): number | undefined {
  switch (n.op) {
    case 'embed': case 'matmul': return 1;
    case 'fused_matmul': return (n.arg as OpArgs['fused_matmul']).prologue === 'none' ? 1 : 2;
    default: return undefined;
  }
}

/** Device bytes of a [K, count] tensor of `dtype`. */
export function partBytes(dtype: 'f32' | CompactType, K: number, count: number): number {
  return bufferBytes({ name: '', kind: 'param', dtype, perToken: 0, elements: K * count }, { maxTokens: 0, pages: 0, maxSeqs: 0 });
}

/** Column ranges of N that each fit `cap` bytes at `bytesOf(count)`: the fewest, as equal as possible. */
export function columnParts(N: number, cap: number, bytesOf: (count: number) => number): { first: number; count: number }[] | null {
  if (bytesOf(N) <= cap) return [{ first: 0, count: N }];
  let most = Math.min(N, Math.floor(cap / (bytesOf(N) / N)));
  while (most > 0 && bytesOf(most) > cap) most--;
  if (most < 1) return null;
  const parts = Math.ceil(N / most), size = Math.ceil(N / parts);
  const out: { first: number; count: number }[] = [];
  for (let first = 0; first < N; first += size) out.push({ first, count: Math.min(size, N - first) });
  return out;
}

/**
 * Param name -> its parts, for every param whose device buffer would exceed the limits
 * (params that fit are absent). Throws SplitError, naming the param, the op and the sizes,
 * when one cannot be split.
 */
export function splitParams(g: Graph, quant: ReadonlyMap<string, CompactType>, limits: BufferLimits): Map<string, ParamPart[]> {
  const cap = bufferCap(limits);
  if (!(cap >= 16)) throw new SplitError(`buffer limits must be at least 16 bytes, got binding ${limits.maxBindingBytes} and buffer ${limits.maxBufferBytes}`);
  const out = new Map<string, ParamPart[]>();
  for (const p of g.nodes) {
    if (p.op !== 'param') continue;
    const name = (p.arg as OpArgs['param']).name;
    const dtype = quant.get(name) ?? 'f32';
    const shape = p.shape as number[];
    const whole = partBytes(dtype, shape.reduce((a, b) => a * b, 1), 1);
    if (whole <= cap) continue;
    const over = `parameter ${name} [${shape.join(', ')}] needs ${mib(whole)} as ${dtype}, over the device buffer limit of ${mib(cap)}`;
    const users = g.nodes.filter((n) => n.src.includes(p));
    const bad = users.find((n) => n.src.some((s, i) => s === p && i !== splittableOperand(n)));
    if (bad) throw new SplitError(`${over}, and it is read by ${bad.op} (%${bad.id}), which cannot read it in parts (only matmul weights and embedding tables are split)`);
    if (shape.length !== 2) throw new SplitError(`${over}, and only 2-D params are split`);
    const [K, N] = shape;
    const parts = columnParts(N, cap, (count) => partBytes(dtype, K, count));
    if (!parts) throw new SplitError(`${over}, and even one of its ${N} columns (${K} weights) is over it`);
    out.set(name, parts.map((r) => ({ of: name, ...r })));
  }
  return out;
}
