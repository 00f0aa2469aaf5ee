// A readable text form of a graph, one node per line, for tests, snapshots and
// `infer compile --print-ir`:   %12 = matmul(%10, %11) : f32[T, 64]
import type { Graph, Node } from './graph.ts';

function showArg(n: Node): string {
  const entries = Object.entries(n.arg);
  if (entries.length === 0) return '';
  return ' {' + entries.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ') + '}';
}

export function printNode(n: Node): string {
  const src = n.src.map((s) => `%${s.id}`).join(', ');
  return `%${n.id} = ${n.op}(${src})${showArg(n)} : ${n.dtype}[${n.shape.join(', ')}]`;
}

export function printGraph(g: Graph): string {
  const head = `graph ${g.model.name} (${g.nodes.length} nodes, ${g.params.length} params)`;
  return [head, ...g.nodes.map(printNode), `return %${g.logits.id}`].join('\n') + '\n';
}
