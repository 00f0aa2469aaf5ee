// softcap(matmul(...), c), which the DSL lowers to c * tanh(y / c) (compiler/builtins.ts),
// becomes a matmul whose epilogue caps each output: Gemma 2's final logits (a vocabulary-wide
// row) then take one dispatch and one write instead of four of each. Only when the matmul,
// the division and the tanh each have one user, and both constants are the same cap.
import { rewrite, useCounts, type Node } from '../ir/graph.ts';
import type { OpArgs } from '../ir/ops.ts';
import type { Pass } from './pass.ts';
import { openMatmul, withEpilogue } from './fuseBias.ts';

const constValue = (n: Node): number | undefined => (n.op === 'const' ? (n.arg as OpArgs['const']).value : undefined);
const isBinary = (n: Node, fn: OpArgs['binary']['fn']): boolean => n.op === 'binary' && (n.arg as OpArgs['binary']).fn === fn;

export const fuseSoftcap: Pass = {
  name: 'fuseSoftcap',
  fuses: 'softcap',
  summary: 'fold soft-capping c * tanh(y / c) into the epilogue of the matmul that computes y',
  run: (g) => {
    const uses = useCounts(g);
    return rewrite(g, (n, _src, b, old) => {
      if (!isBinary(n, 'mul')) return undefined;
      for (const side of [0, 1]) {
        const t = n.src[side], cap = constValue(n.src[1 - side]);
        if (cap === undefined || !(cap > 0 && Number.isFinite(cap))) continue;
        if (t.op !== 'unary' || (t.arg as OpArgs['unary']).fn !== 'tanh' || uses.get(t) !== 1) continue;
        const d = t.src[0];
        if (!isBinary(d, 'div') || uses.get(d) !== 1 || constValue(d.src[1]) !== cap) continue;
        const mm = d.src[0];
        if (!openMatmul(mm, uses, 'softcap') || mm.shape.length !== 2) continue;
        return withEpilogue(b, old.get(mm)!, { softcap: cap });
      }
      return undefined;
    });
  },
};
