// Diagnostics stay readable whatever the input: at most MAX_DIAGNOSTICS are printed,
// then "... and N more errors" and the total; a long source line shows a window around
// the caret, not the whole line.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main, MAX_DIAGNOSTICS } from '../../cli/main.ts';
import { formatDiagnostic, SOURCE_WINDOW } from '../../dsl/diagnostics.ts';

async function check(text: string | Buffer): Promise<{ code: number; err: string; file: string }> {
  const file = join(mkdtempSync(join(tmpdir(), 'infer-diag-')), 'x.infer');
  writeFileSync(file, text);
  let err = '';
  const code = await main(['check', file], { out: () => {}, err: (t) => { err += t; } });
  return { code, err, file };
}

describe('infer check diagnostics', () => {
  it('caps a binary file\'s hundreds of errors at 20, with a summary line', async () => {
    let x = 12345;
    const bytes = Buffer.from(Array.from({ length: 4096 }, () => ((x = (x * 1103515245 + 12345) >>> 0) >>> 16) & 0xff));
    const r = await check(bytes);
    expect(r.code).toBe(1);
    const heads = r.err.split('\n').filter((l) => l.startsWith(r.file + ':'));
    expect(heads).toHaveLength(MAX_DIAGNOSTICS);
    const m = /^\.\.\. and (\d+) more errors\n(\d+) errors\n$/m.exec(r.err.slice(r.err.lastIndexOf('\n...')+1));
    expect(m).not.toBeNull();
    expect(Number(m![1]) + MAX_DIAGNOSTICS).toBe(Number(m![2]));
    expect(r.err.length).toBeLessThan(20_000);
  });

  it('shows a window of a long line around the caret', async () => {
    const spec = readFileSync('examples/tiny-llama.infer', 'utf8');
    const r = await check(spec.replace('ffn = 172;', `ffn = 172;${' '.repeat(200_000)}@`));
    expect(r.code).toBe(1);
    expect(r.err.length).toBeLessThan(2_000);
    const [, src, caret] = r.err.split('\n');
    expect(src.length).toBeLessThanOrEqual(SOURCE_WINDOW + 6);
    expect(src.startsWith('...')).toBe(true);
    expect(src[caret.indexOf('^')]).toBe('@');
  });

  it('windows keep the caret under the offending text, tabs included', () => {
    const line = '\t' + 'a'.repeat(300) + 'BAD' + 'b'.repeat(300);
    const col = line.indexOf('BAD') + 1;
    const out = formatDiagnostic({ file: 'f', line: 1, col, endCol: col + 2, message: 'm', severity: 'error' }, line);
    const [, src, caret] = out.split('\n');
    expect(src).toMatch(/^\.\.\.a+BADb+\.\.\.$/);
    expect(src.slice(caret.indexOf('^'), caret.indexOf('^') + 3)).toBe('BAD');
    expect(caret.trim()).toBe('^~~');
    const short = formatDiagnostic({ file: 'f', line: 1, col: 3, message: 'm', severity: 'error' }, '\tx y');
    expect(short).toBe('f:1:3: error: m\n\tx y\n\t ^');
  });
});
