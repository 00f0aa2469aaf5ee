// The order llama.cpp's CPU backend sorts MoE router scores into, which decides routing
// ties (see moe.ts's header for what was measured). Kept apart from moe.ts: it is a
// faithful re-enactment of libstdc++'s introsort, step for step, not IR semantics.

/**
 * The order llama.cpp's CPU argsort puts the scores scores[o .. o+E) in, highest
 * first: libstdc++'s std::sort (introsort) of the indices 0..E-1 under the strict
 * comparison `score[a] > score[b]`, step for step, since the order of equal scores is
 * whatever those steps leave (see the header). Segments of more than 16 are split by
 * an unguarded partition around the median of (second, middle, last) moved to the
 * front, at most 2 floor(log2 E) levels deep; a segment still longer at that depth
 * is heap-sorted; then one insertion sort over everything (unguarded past the first
 * 16, which the partitions make safe). The WGSL moe_route kernel runs the same steps.
 */
export function llamaArgsort(scores: ArrayLike<number>, o: number, E: number): Int32Array {
  const d = Int32Array.from({ length: E }, (_, i) => i);
  const gt = (a: number, b: number): boolean => scores[o + a] > scores[o + b];
  const swap = (i: number, j: number): void => { const t = d[i]; d[i] = d[j]; d[j] = t; };
  // Heap sort of d[f .. l) (depth limit reached): build a heap whose root is the lowest
  // score, then move the root to the end repeatedly.
  const sift = (f: number, hole: number, len: number, v: number): void => {
    const top = hole;
    let child = hole;
    while (child < ((len - 1) >> 1)) {
      child = 2 * (child + 1);
      if (gt(d[f + child], d[f + child - 1])) child--;
      d[f + hole] = d[f + child];
      hole = child;
    }
    if ((len & 1) === 0 && child === ((len - 2) >> 1)) {
      child = 2 * (child + 1);
      d[f + hole] = d[f + child - 1];
      hole = child - 1;
    }
    let parent = (hole - 1) >> 1;
    while (hole > top && gt(d[f + parent], v)) { d[f + hole] = d[f + parent]; hole = parent; parent = (hole - 1) >> 1; }
    d[f + hole] = v;
  };
  const heapSort = (f: number, l: number): void => {
    const len = l - f;
    if (len < 2) return;
    for (let p = (len - 2) >> 1; p >= 0; p--) sift(f, p, len, d[f + p]);
    for (let n = len - 1; n > 0; n--) { const v = d[f + n]; d[f + n] = d[f]; sift(f, 0, n, v); }
  };
  // Partitioning, one segment at a time (segments never exchange elements, so the
  // order they are processed in does not matter).
  const stack: [number, number, number][] = [[0, E, 2 * (31 - Math.clz32(Math.max(E, 1)))]];
  while (stack.length) {
    let [f, l, depth] = stack.pop()!;
    while (l - f > 16) {
      if (depth === 0) { heapSort(f, l); break; }
      depth--;
      // Median of d[f+1], d[mid], d[l-1] to d[f].
      const a = f + 1, b = f + ((l - f) >> 1), c = l - 1;
      if (gt(d[a], d[b])) {
        if (gt(d[b], d[c])) swap(f, b); else if (gt(d[a], d[c])) swap(f, c); else swap(f, a);
      } else if (gt(d[a], d[c])) swap(f, a); else if (gt(d[b], d[c])) swap(f, c); else swap(f, b);
      // Unguarded partition of d[f+1 .. l) around d[f].
      let lo = f + 1, hi = l;
      for (;;) {
        while (gt(d[lo], d[f])) lo++;
        hi--;
        while (gt(d[f], d[hi])) hi--;
        if (!(lo < hi)) break;
        swap(lo, hi);
        lo++;
      }
      stack.push([lo, l, depth]);
      l = lo;
    }
  }
  // Insertion sort: an element higher than d[0] (only possible in the first 16) goes to
  // the front; any other moves down past the strictly lower ones before it.
  for (let i = 1; i < E; i++) {
    const v = d[i];
    if (i < 16 && gt(v, d[0])) { d.copyWithin(1, 0, i); d[0] = v; continue; }
    let j = i;
    while (j > 0 && gt(v, d[j - 1])) { d[j] = d[j - 1]; j--; }
    d[j] = v;
  }
  return d;
}
