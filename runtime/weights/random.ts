// Seeded random weights for `weights random(seed = N)` specs and for tests.
// Each tensor's values depend only on (seed, tensor name): the name is hashed,
// mixed with the seed, and drives its own xoshiro128** stream, so a tensor does
// not change when other tensors are added or reordered, and both engines get
// bit-identical Float32Arrays.
//
// Scales keep a random model's logits informative (neither flat nor explosive):
//   token_embd                      uniform, std 1 (rmsnorm rescales rows anyway)
//   other 2-D [K, N] params         uniform, std 1/sqrt(K)  (output rows keep unit variance)
//   1-D params (norm weights)       1 + uniform noise of std 0.1
import type { ParamInfo } from '../../program/model.ts';
import type { WeightSource } from '../../program/weights.ts';

export class WeightShapeError extends Error {}

/** A WeightSource that also states which tensors it holds and their shapes. */
export interface ShapedWeightSource extends WeightSource {
  readonly params: readonly ParamInfo[];
}

/** FNV-1a over the UTF-16 code units of the name, then a murmur3 finaliser with the seed. */
function hashName(name: string, seed: number): number {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619);
  h = (h ^ Math.imul(Math.trunc(seed) >>> 0, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** xoshiro128**, its 128-bit state filled from a 32-bit seed by splitmix32. */
class Xoshiro128 {
  private a: number; private b: number; private c: number; private d: number;
  constructor(seed: number) {
    let s = seed >>> 0;
    const split = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = split(); this.b = split(); this.c = split(); this.d = split();
  }

  /**
   * out[i] = base + a * (u / 2^31 - 1) for the next out.length values u of the stream
   * (xoshiro128**'s step on local state: multi-gigabyte files are written from these streams).
   */
  fill(out: Float32Array, base: number, a: number): void {
    let s0 = this.a, s1 = this.b, s2 = this.c, s3 = this.d;
    for (let i = 0; i < out.length; i++) {
      const m = Math.imul(s1, 5);
      const r = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
      const t = s1 << 9;
      s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3;
      s2 ^= t;
      s3 = (s3 << 11) | (s3 >>> 21);
      out[i] = base + a * (r / 2147483648 - 1);
    }
    this.a = s0; this.b = s1; this.c = s2; this.d = s3;
  }
}

export function validateShape(p: ParamInfo): number {
  if (p.shape.length < 1 || p.shape.length > 3 || !p.shape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new WeightShapeError(`parameter ${p.name} has shape [${p.shape.join(', ')}]; expected 1 to 3 positive integer dims`);
  }
  return p.shape.reduce((a, b) => a * b, 1);
}

/**
 * What determines a tensor's values: its stream's seed and element i = base + a * (u / 2^31 - 1)
 * for the stream's u32 u. Exported for generated code (the CUDA host runner), which ports the
 * stream and takes these numbers instead of the name.
 */
export function randomTensorPlan(name: string, shape: readonly number[], seed: number): { readonly hash: number; readonly a: number; readonly base: number; readonly elements: number } {
  const elements = validateShape({ name, shape });
  // Uniform on [-a, a] has std a/sqrt(3).
  const std = shape.length === 1 ? 0.1 : name === 'token_embd' ? 1 : 1 / Math.sqrt(shape[0]);
  return { hash: hashName(name, seed), a: std * Math.sqrt(3), base: shape.length === 1 ? 1 : 0, elements };
}

/** Fills one tensor; exported so tests can check values without building a source. */
export function randomTensor(name: string, shape: readonly number[], seed: number): Float32Array {
  const { hash, a, base, elements: n } = randomTensorPlan(name, shape, seed);
  const out = new Float32Array(n);
  new Xoshiro128(hash).fill(out, base, a);
  return out;
}

/**
 * The same values as randomTensor, `chunk` at a time (the last chunk may be shorter), in one
 * reused buffer: a writer quantises and writes each before asking for the next, so a tensor
 * of any size costs `chunk` floats of memory.
 */
export function* randomTensorChunks(name: string, shape: readonly number[], seed: number, chunk: number): Generator<Float32Array> {
  const { hash, a, base, elements: n } = randomTensorPlan(name, shape, seed);
  const rng = new Xoshiro128(hash);
  const buf = new Float32Array(Math.min(chunk, n));
  for (let at = 0; at < n; at += buf.length) {
    const part = n - at < buf.length ? buf.subarray(0, n - at) : buf;
    rng.fill(part, base, a);
    yield part;
  }
}

/**
 * The weights of a model bound to `random(seed)`. Tensors are generated on first
 * use and kept, so both engines built from one source share the same arrays.
 */
export class RandomWeights implements ShapedWeightSource {
  private readonly shapes = new Map<string, readonly number[]>();
  private readonly cache = new Map<string, Float32Array>();

  constructor(readonly params: readonly ParamInfo[], readonly seed: number) {
    if (!Number.isInteger(seed)) throw new WeightShapeError(`random weights need an integer seed, got ${seed}`);
    for (const p of params) {
      validateShape(p);
      const prev = this.shapes.get(p.name);
      if (prev && prev.join() !== p.shape.join()) throw new WeightShapeError(`parameter ${p.name} is declared as [${prev.join(', ')}] and [${p.shape.join(', ')}]`);
      this.shapes.set(p.name, p.shape);
    }
  }

  get(name: string): Float32Array {
    let t = this.cache.get(name);
    if (t) return t;
    const shape = this.shapes.get(name);
    if (!shape) throw new WeightShapeError(`no parameter named ${name} in this model`);
    t = randomTensor(name, shape, this.seed);
    this.cache.set(name, t);
    return t;
  }

  /** Drops one generated tensor (a device holds it now). */
  evict(name: string): void { this.cache.delete(name); }

  /** Drops generated tensors (e.g. once uploaded to a GPU). */
  release(): void { this.cache.clear(); }
}

/** Checks that a source holds every parameter with the declared number of elements. */
export function validateWeights(params: readonly ParamInfo[], source: WeightSource): void {
  for (const p of params) {
    const n = validateShape(p);
    const t = source.get(p.name);
    if (t.length !== n) throw new WeightShapeError(`weight ${p.name}: expected ${n} values for shape [${p.shape.join(', ')}], got ${t.length}`);
  }
}
