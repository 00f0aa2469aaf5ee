// Public entry of the front end: text -> (AST, diagnostics). Never throws:
// every problem, including an internal failure, comes back as a diagnostic.
import type { IToken } from 'chevrotain';
import type { Model } from './ast.ts';
import { evaluateConfig, resolveKvCache } from './config.ts';
import { type Diagnostic, sortDiagnostics, stripBom } from './diagnostics.ts';
import { tokenLoc } from './loc.ts';
import { parseTokens } from './parser.ts';
import { buildAst } from './toAst.ts';
import { lex, Newline, Semicolon } from './tokens.ts';
import { resolveSpeculative } from './speculative.ts';

export * from './ast.ts';
export { evalConstExpr, evaluateConfig, resolveKvCache } from './config.ts';
export type { ConfigValues, ConstResult, KvCacheResult } from './config.ts';
export { resolveSpeculative, type DraftRef, type SpecSettings } from './speculative.ts';
export { type Diagnostic, diagnosticAt, formatDiagnostic, formatDiagnostics, stripBom } from './diagnostics.ts';
export { type Loc, where } from './loc.ts';

export interface ParseOutput {
  /**
   * The model, or null when there is a syntax or structural error. Errors in
   * config or kv_cache values leave the AST in place; callers must still
   * treat any diagnostic as fatal.
   */
  ast: Model | null;
  diagnostics: Diagnostic[];
  /** Further models in the file (drafts the first one can name in `speculative`). */
  others?: Model[];
}

/** Where a parse error that hit end of file should point: just after the last token. */
function endPosition(tokens: IToken[]): { line: number; col: number } {
  for (let i = tokens.length - 1; i >= 0; i--) {
    if (tokens[i].tokenType !== Newline) {
      const l = tokenLoc(tokens[i]);
      return { line: l.endLine, col: l.endCol + 1 };
    }
  }
  return { line: 1, col: 1 };
}

function parseUnsafe(text: string, file: string): ParseOutput {
  const lexed = lex(text, file);
  if (lexed.diagnostics.length > 0) return { ast: null, diagnostics: sortDiagnostics(lexed.diagnostics) };
  if (!lexed.tokens.some((t) => t.tokenType !== Newline && t.tokenType !== Semicolon)) {
    return { ast: null, diagnostics: [{ file, line: 1, col: 1, message: "empty file: expected 'model NAME { ... }'", severity: 'error' }] };
  }
  const parsed = parseTokens(lexed.tokens);
  if (parsed.errors.length > 0 || !parsed.cst) {
    // Recovery is off, so the first error is the only trustworthy one.
    const e = parsed.errors[0];
    const t = e?.token;
    const atEnd = !t || Number.isNaN(t.startOffset) || t.tokenType.name === 'EOF';
    const d: Diagnostic = atEnd
      ? { file, ...endPosition(lexed.tokens), message: e?.message ?? 'syntax error', severity: 'error' }
      : { file, line: t.startLine ?? 1, col: t.startColumn ?? 1, message: e.message, severity: 'error' };
    if (!atEnd && t.tokenType !== Newline && t.endLine === t.startLine) d.endCol = t.endColumn;
    return { ast: null, diagnostics: [d] };
  }
  const built = buildAst(parsed.cst, file);
  if (!built.ast) return { ast: null, diagnostics: sortDiagnostics(built.diagnostics) };
  const diagnostics: Diagnostic[] = [];
  for (const m of [built.ast, ...built.others]) {
    const config = evaluateConfig(m);
    diagnostics.push(...config.diagnostics, ...resolveKvCache(m, config.values).diagnostics);
    diagnostics.push(...resolveSpeculative(m, built.others.filter((o) => o !== m), config.values).diagnostics);
  }
  return { ast: built.ast, diagnostics: sortDiagnostics(diagnostics), ...(built.others.length ? { others: built.others } : {}) };
}

/** Parses and checks a .infer spec. Never throws. */
export function parseInfer(text: string, file: string): ParseOutput {
  try {
    // Editors may save a UTF-8 byte-order mark; it is not part of the text (and is
    // invisible), so it is dropped: line 1's columns then count as the editor shows them.
    return parseUnsafe(stripBom(String(text)), file);
  } catch (err) {
    // Deep recursion (e.g. thousands of unary '-') is the one failure we expect.
    const message =
      err instanceof RangeError
        ? 'expression nested too deeply'
        : `internal error in the parser: ${err instanceof Error ? err.message : String(err)}`;
    return { ast: null, diagnostics: [{ file, line: 1, col: 1, message, severity: 'error' }] };
  }
}
