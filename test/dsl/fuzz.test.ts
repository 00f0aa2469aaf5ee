// Property: whatever the input, parseInfer returns (never throws), and it
// either yields an AST or explains why not with diagnostics that point inside
// the text. Inputs are random strings and single edits of the example, which
// reach far more of the grammar's error paths than random text does.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatDiagnostic, parseInfer } from '../../dsl/index.ts';
import { EXAMPLE } from './example.ts';

function checkOutcome(text: string): void {
  let result!: ReturnType<typeof parseInfer>;
  expect(() => (result = parseInfer(text, 'fuzz.infer'))).not.toThrow();
  expect(result.ast !== null || result.diagnostics.length > 0).toBe(true);
  const lines = text.split(/\r\n|\r|\n/);
  for (const d of result.diagnostics) {
    expect(d.message).not.toMatch(/internal error|-->|<--/);
    expect(d.line).toBeGreaterThanOrEqual(1);
    expect(d.col).toBeGreaterThanOrEqual(1);
    expect(d.line).toBeLessThanOrEqual(lines.length);
    expect(d.col).toBeLessThanOrEqual(lines[d.line - 1].length + 1);
    if (d.endCol !== undefined) {
      expect(d.endCol).toBeGreaterThanOrEqual(d.col);
      expect(d.endCol).toBeLessThanOrEqual(lines[d.line - 1].length + 1);
    }
    expect(() => formatDiagnostic(d, text)).not.toThrow();
  }
}

// Token-ish pieces of the example: words, numbers, single symbols, spaces.
const PIECES = EXAMPLE.match(/[A-Za-z_]\w*|\d+(?:\.\d+)?(?:e-?\d+)?|->|\s+|./g) ?? [];
const INSERTS = [
  '{', '}', '(', ')', '[', ']', ';', '\n', ',', '=', ':', '@', '-', '.', '->', '$', '"', '1e', '0x', '1.2.3',
  'model', 'config', 'kv_cache', 'weights', 'params', 'layer', 'return', 'x', 'T', '# c', '\r', '\t', '\u00e9',
];

type Edit = { op: 'delete' | 'duplicate'; at: number } | { op: 'insert'; at: number; text: string };

const charEdit = fc.oneof(
  fc.record({ op: fc.constantFrom('delete' as const, 'duplicate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), text: fc.oneof(fc.constantFrom(...INSERTS), fc.string({ maxLength: 2 })) }),
);

function applyCharEdit(text: string, e: Edit): string {
  const at = e.at % (text.length + 1);
  if (e.op === 'insert') return text.slice(0, at) + e.text + text.slice(at);
  if (e.op === 'delete') return text.slice(0, at) + text.slice(at + 1);
  return text.slice(0, at) + text.slice(at, at + 1) + text.slice(at);
}

function applyTokenEdit(e: Edit): string {
  const pieces = [...PIECES];
  const at = e.at % pieces.length;
  if (e.op === 'insert') pieces.splice(at, 0, e.text);
  else if (e.op === 'delete') pieces.splice(at, 1);
  else pieces.splice(at, 0, pieces[at]);
  return pieces.join('');
}

describe('parseInfer never throws', () => {
  it('parses the unmodified example cleanly', () => {
    expect(PIECES.join('')).toBe(EXAMPLE);
    const r = parseInfer(EXAMPLE, 'x');
    expect(r.diagnostics).toEqual([]);
  });

  it('random strings', () => {
    const alphabet = fc.constantFrom(...'model{}()[];:=,.@+-*/%#\n\r\t 0123456789eExabc_$'.split(''));
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: alphabet, maxLength: 80 }), fc.string({ unit: 'binary', maxLength: 40 })), checkOutcome),
      { numRuns: 1000 },
    );
  });

  it('single and double character edits of the example', () => {
    fc.assert(
      fc.property(fc.array(charEdit, { minLength: 1, maxLength: 2 }), (edits) => {
        checkOutcome(edits.reduce(applyCharEdit, EXAMPLE));
      }),
      { numRuns: 1500 },
    );
  });

  it('token edits of the example', () => {
    fc.assert(
      fc.property(charEdit, (edit) => {
        checkOutcome(applyTokenEdit(edit));
      }),
      { numRuns: 1500 },
    );
  });

  it('truncations of the example', () => {
    for (let n = 0; n <= EXAMPLE.length; n += 7) checkOutcome(EXAMPLE.slice(0, n));
  });
});
