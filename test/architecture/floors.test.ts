// The floors: imports point down only. program/ (the Program contract) imports nothing of
// the project; dsl/ and compiler/ build on it; backends/ render Programs without the
// compiler; runtime/ runs them (the CPU engine alone reaches into the compiler's
// interpreter, its declared oracle); cli/ is the top. bench/ uses anything but test code.
// The browser-safe core (program/, and the runtime files the ProgramRunner and the
// tokenizers reach) imports no `node:` module.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(dirname(new URL(import.meta.url).pathname), '..', '..');
const FOLDERS = ['program', 'dsl', 'compiler', 'backends', 'runtime', 'cli', 'bench'] as const;
type Floor = (typeof FOLDERS)[number] | 'test' | 'examples';

/** What each folder may import from the project, besides itself. */
const ALLOWED: Record<(typeof FOLDERS)[number], readonly Floor[]> = {
  program: [],
  dsl: ['program'],
  compiler: ['program', 'dsl'],
  backends: ['program'],
  runtime: ['program', 'backends'],
  cli: ['program', 'dsl', 'compiler', 'backends', 'runtime'],
  bench: ['program', 'dsl', 'compiler', 'backends', 'runtime', 'cli', 'examples'],
};
/** Declared exceptions: [importing file prefix, imported file prefix, why]. */
const EXCEPTIONS: readonly [string, string, string][] = [
  ['runtime/cpu/', 'compiler/ir/', 'the CPU engine runs the float64 interpreter, the oracle'],
];

interface Edge { readonly from: string; readonly to: string; readonly spec: string }

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : /\.(ts|mjs)$/.test(e.name) && !e.name.endsWith('.d.ts') ? [join(dir, e.name)] : []);
}

/** Every import (static, re-export or dynamic with a literal path) of every source file. */
function edges(): Edge[] {
  const out: Edge[] = [];
  for (const folder of FOLDERS) for (const file of sources(folder)) {
    const text = readFileSync(join(ROOT, file), 'utf8');
    for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)'([^']+)'/g)) {
      const spec = m[1];
      const to = spec.startsWith('.') ? normalize(join(dirname(file), spec)) : spec;
      out.push({ from: file, to, spec });
    }
  }
  return out;
}

const floorOf = (path: string): string => path.split('/')[0];
const isProject = (e: Edge): boolean => e.spec.startsWith('.');

describe('floors', () => {
  const all = edges();

  it('finds the imports it checks (a parser that saw nothing would pass anything)', () => {
    expect(all.filter(isProject).length).toBeGreaterThan(300);
    expect(all.some((e) => e.from.startsWith('runtime/') && e.to.startsWith('program/'))).toBe(true);
  });

  it('every project import points down the floors, or is a declared exception', () => {
    const bad = all.filter(isProject).filter((e) => {
      const from = floorOf(e.from) as (typeof FOLDERS)[number], to = floorOf(e.to);
      if (from === to) return false;
      if (EXCEPTIONS.some(([a, b]) => e.from.startsWith(a) && e.to.startsWith(b))) return false;
      return !(ALLOWED[from] as readonly string[]).includes(to);
    }).map((e) => `${e.from} -> ${relative('.', e.to)}`);
    expect(bad).toEqual([]);
  });

  it('the browser-safe core imports no node: module', () => {
    // Start from the runner, the tokenizers and the embedding core (what generated modules
    // import: runtime/embed/index.ts) and follow relative imports.
    const byFile = new Map<string, Edge[]>();
    for (const e of all) byFile.set(e.from, [...(byFile.get(e.from) ?? []), e]);
    const seen = new Set<string>();
    const stack = ['runtime/runner/programRunner.ts', 'runtime/tokenizer/index.ts', 'runtime/embed/index.ts', ...sources('program')];
    while (stack.length) {
      const f = stack.pop()!;
      if (seen.has(f)) continue;
      seen.add(f);
      for (const e of byFile.get(f) ?? []) if (isProject(e) && !e.to.startsWith('backends/wgsl') && !e.to.startsWith('backends/cuda')) stack.push(e.to);
    }
    expect(seen.size).toBeGreaterThan(15);
    const nodeImports = [...seen].flatMap((f) => (byFile.get(f) ?? []).filter((e) => e.spec.startsWith('node:')).map((e) => `${f} imports ${e.spec}`));
    expect(nodeImports).toEqual([]);
  });
});
