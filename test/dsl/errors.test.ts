import { describe, expect, it } from 'vitest';
import { formatDiagnostic, parseInfer } from '../../dsl/index.ts';
import { EXAMPLE, wrap } from './example.ts';

/** Every diagnostic as `line:col message`. */
function errors(text: string): string[] {
  const r = parseInfer(text, 'spec.infer');
  for (const d of r.diagnostics) expect(d).toMatchObject({ file: 'spec.infer', severity: 'error' });
  return r.diagnostics.map((d) => `${d.line}:${d.col} ${d.message}`);
}

describe('syntax errors', () => {
  it('unterminated block at end of file names the block and where it opened', () => {
    const src = 'model M {\n  config { a = 1 }\n  layer b(x: [T]) -> [T] {\n    return x\n';
    expect(errors(src)).toEqual(["4:13 expected '}' to close 'layer' block opened at 3:3"]);
  });

  it('unterminated block followed by another section', () => {
    const src = 'model M {\n  config {\n    vocab = 256\n  kv_cache { dtype = f32 }\n  logits = x\n}';
    expect(errors(src)).toEqual([
      "4:3 unexpected 'kv_cache' in 'config' block opened at 2:3; expected 'name = value', a newline or '}'",
    ]);
  });

  it('unexpected token where an expression should be', () => {
    expect(errors(wrap('  x = ;'))).toEqual(["2:7 unexpected ';', expected an expression"]);
    expect(errors(wrap('  x = a +'))).toEqual(["2:10 unexpected end of line, expected an expression"]);
    expect(errors(wrap('  x = (a + )'))).toEqual(["2:12 unexpected ')', expected an expression"]);
  });

  it('malformed numbers', () => {
    expect(errors(wrap('  x = 1e'))).toEqual(["2:7 malformed number '1e': exponent has no digits"]);
    expect(errors(wrap('  x = 2.5e+ * 3'))).toEqual(["2:7 malformed number '2.5e+': exponent has no digits"]);
    expect(errors(wrap('  x = 1.2.3'))).toEqual(["2:7 malformed number '1.2.3': more than one '.'"]);
    expect(errors(wrap('  x = 0x'))).toEqual(["2:7 malformed number '0x': only decimal numbers are supported"]);
    expect(errors(wrap('  x = 12ab'))).toEqual(["2:7 malformed number '12ab'"]);
  });

  it('missing = in config', () => {
    expect(errors('model M {\n  config {\n    vocab 256\n  }\n}')).toEqual(["3:11 expected '=' after 'vocab', found '256'"]);
  });

  it('missing : in params', () => {
    expect(errors(wrap('  params { w = [dim] }'))).toEqual([
      "2:14 expected ':' after 'w' (declarations are 'name: [dims]'), found '='",
    ]);
  });

  it('stray character', () => {
    expect(errors(wrap('  x = a $ b'))).toEqual(["2:9 unexpected character '$'"]);
    expect(errors(wrap('  x = a\u0007'))).toEqual(['2:8 unexpected character U+0007']);
  });

  it('empty file', () => {
    expect(errors('')).toEqual(["1:1 empty file: expected 'model NAME { ... }'"]);
    expect(errors('\n# only a comment\n\n')).toEqual(["1:1 empty file: expected 'model NAME { ... }'"]);
  });

  it('missing statement separator', () => {
    expect(errors(wrap('  x = a y = b'))).toEqual(["2:9 expected a newline or ';' before this statement"]);
  });

  it('unclosed brackets and parentheses', () => {
    expect(errors(wrap('  x = [a, b c]'))).toEqual(["2:13 expected ',' or ']' to close '[' opened at 2:7, found 'c'"]);
    expect(errors(wrap('  x = (a + b'))).toEqual(["3:3 expected ')' to close '(' opened at 2:7, found 'logits'"]);
    expect(errors(wrap('  x = f(a,\n  b'))).toEqual(["4:3 expected ',' or ')' to close '(' opened at 2:8, found 'logits'"]);
  });

  it('text after the model', () => {
    expect(errors('model M { logits = x } }')).toEqual(["1:24 unexpected '}' after the end of the model"]);
    // A second model is a draft candidate (speculative decoding), checked like the first.
    expect(errors('model M { logits = x }\nmodel N { }')).toEqual(["2:7 model 'N' never assigns 'logits' (its output)"]);
    expect(errors('model M { logits = x }\nmodel M { logits = x }')).toEqual(["2:7 duplicate model 'M' (first at 1:7)"]);
    expect(errors('config { a = 1 }')).toEqual(["1:1 expected 'model NAME { ... }', found 'config'"]);
  });

  it('malformed headers', () => {
    expect(errors('model { }')).toEqual(["1:7 expected a model name after 'model', found '{'"]);
    expect(errors(wrap('  layer b(x: [T]) [T] { return x }'))).toEqual([
      "2:19 expected '->' and the output shape after the layer inputs, found '['",
    ]);
    expect(errors(wrap('  weights'))).toEqual([
      "2:10 expected a weights source after 'weights' (e.g. gguf or random(seed = 7)), found end of line",
    ]);
  });
});

describe('structural errors', () => {
  it('duplicate section, reported at the second occurrence', () => {
    expect(errors(wrap('  config { a = 1 }\n  config { b = 2 }'))).toEqual(["3:3 duplicate 'config' section (first at 2:3)"]);
    expect(errors(wrap('  weights gguf\n  kv_cache { }\n  weights gguf'))).toEqual(["4:3 duplicate 'weights' section (first at 2:3)"]);
  });

  it('only one layer', () => {
    const src = wrap('  layer a(x: [T]) -> [T] { return x }\n  layer b(x: [T]) -> [T] { return x }');
    expect(errors(src)).toEqual(["3:9 only one 'layer' is allowed per model (first is 'a' at 2:3)"]);
  });

  it('missing return in layer', () => {
    expect(errors(wrap('  layer b(x: [T]) -> [T] {\n    h = x\n  }'))).toEqual(["4:3 layer 'b' must end with 'return EXPR'"]);
  });

  it('return and params placement in a layer', () => {
    expect(errors(wrap('  layer b(x: [T]) -> [T] {\n    return x\n    h = x\n  }'))).toEqual([
      "3:5 'return' must be the last statement of layer 'b'",
    ]);
    expect(errors(wrap('  layer b(x: [T]) -> [T] {\n    h = x\n    params { w: [T] }\n    return h\n  }'))).toEqual([
      "4:5 'params' must come first in layer 'b'",
    ]);
  });

  it('duplicate parameters and arguments', () => {
    expect(errors(wrap('  params { w: [a]; v: [b]; w: [c] }'))).toEqual(["2:28 duplicate parameter 'w' (first declared at 2:12)"]);
    expect(errors(wrap('  x = f(a = 1, b, a = 2)'))).toEqual([
      '2:16 positional argument after a named argument',
      "2:19 duplicate argument 'a' (first at 2:9)",
    ]);
    expect(errors(wrap('  weights random(7)'))).toEqual(['2:18 weights arguments must be named, e.g. random(seed = 7)']);
  });

  it('a model must assign logits', () => {
    expect(errors('model M {\n  x = 1\n}')).toEqual(["1:7 model 'M' never assigns 'logits' (its output)"]);
  });
});

describe('config errors', () => {
  const cfg = (body: string): string[] => errors(`model M {\n  config {\n${body}\n  }\n  logits = x\n}`);

  it('duplicate constant', () => {
    expect(cfg('    dim = 64\n    dim = 32')).toEqual(["4:5 duplicate config constant 'dim' (first defined at 3:5)"]);
  });

  it('unknown name, with the use site', () => {
    expect(cfg('    dim = 64; head_dim = dim / hedas')).toEqual(["3:32 unknown name 'hedas' in config expression"]);
  });

  it('use before definition and self reference', () => {
    expect(cfg('    a = b + 1\n    b = 2')).toEqual(["3:9 'b' is used before it is defined (at 4:5); config constants may only use earlier ones"]);
    expect(cfg('    a = a')).toEqual(["3:9 config constant 'a' refers to itself"]);
  });

  it('division and remainder by zero, at the operator', () => {
    expect(cfg('    a = 4; b = a / (a - 4)')).toEqual(['3:18 division by zero']);
    expect(cfg('    a = 4 % 0')).toEqual(['3:11 division by zero']);
  });

  it('does not cascade from a failed constant', () => {
    expect(cfg('    a = 1 / 0\n    b = a * 2')).toEqual(['3:11 division by zero']);
  });

  it('non-arithmetic values', () => {
    expect(cfg('    a = f(1)')).toEqual(["3:9 function call 'f(...)' is not allowed in config expressions"]);
    expect(cfg('    a = [1]')).toEqual(['3:9 a list is not allowed in config expressions']);
    expect(cfg('    a = 2 @ 3')).toEqual(["3:11 '@' (matrix product) is not allowed in config expressions"]);
  });

  it('keeps the AST when only values are wrong', () => {
    const r = parseInfer(`model M {\n  config { a = 1 / 0 }\n  logits = x\n}`, 'f');
    expect(r.ast?.name).toBe('M');
    expect(r.diagnostics).toHaveLength(1);
  });
});

describe('kv_cache errors', () => {
  const kv = (body: string): string[] => errors(wrap(`  config { p = 12 }\n  kv_cache { ${body} }`));

  it('unknown key', () => {
    expect(kv('layuot = contiguous')).toEqual(["3:14 unknown kv_cache key 'layuot' (expected layout, dtype or window)"]);
  });

  it('page must be a power of two (also through a constant)', () => {
    expect(kv('layout = paged(page = 12)')).toEqual(['3:36 page must be a power of two, got 12']);
    expect(kv('layout = paged(page = p)')).toEqual(['3:36 page must be a power of two, got 12']);
    expect(kv('layout = paged')).toEqual(['3:23 paged layout needs a page size: paged(page = 16)']);
  });

  it('bad dtype and layout', () => {
    expect(kv('dtype = bf16')).toEqual(["3:22 kv_cache dtype must be one of f32, f16, int8, int4 (got 'bf16')"]);
    expect(kv('layout = ring')).toEqual(["3:23 kv_cache layout must be 'contiguous' or 'paged(page = N)'"]);
  });

  it('window must be positive, duplicate keys', () => {
    expect(kv('window = 0')).toEqual(['3:23 kv_cache window must be a positive integer, got 0']);
    expect(kv('dtype = f16; dtype = f32')).toEqual(["3:27 duplicate kv_cache key 'dtype' (first at 3:14)"]);
  });
});

describe('formatDiagnostic', () => {
  it('prints the location, the line and a caret under the offending text', () => {
    const src = EXAMPLE.replace('dtype = f32', 'dtype = f64');
    const d = parseInfer(src, 'tiny.infer').diagnostics;
    expect(d).toHaveLength(1);
    expect(formatDiagnostic(d[0], src)).toBe(
      "tiny.infer:8:43: error: kv_cache dtype must be one of f32, f16, int8, int4 (got 'f64')\n" +
        '  kv_cache { layout = contiguous; dtype = f64 }          # also: layout = paged(page = 16); dtype = int8; window = 4096\n' +
        '                                          ^~~',
    );
  });

  it('keeps tabs so the caret lines up', () => {
    const src = 'model M {\n\tx = $\n}';
    const [d] = parseInfer(src, 'f').diagnostics;
    expect(formatDiagnostic(d, src).split('\n').slice(1)).toEqual(['\tx = $', '\t    ^']);
  });

  it('points just past the last token at end of file', () => {
    const src = 'model M {\n  logits = x';
    const [d] = parseInfer(src, 'f').diagnostics;
    expect(formatDiagnostic(d, src)).toBe("f:2:13: error: expected '}' to close 'model' block opened at 1:1\n  logits = x\n            ^");
  });
});
