// Diagnostics: every problem the front end finds, as data, plus the classic
// compiler rendering `file:line:col: error: message`, the source line and a
// caret underline, which is what `infer check` prints.
import type { Loc } from './loc.ts';

export interface Diagnostic {
  file: string;
  /** 1-based line. */
  line: number;
  /** 1-based column (UTF-16 code units; a tab counts as one). */
  col: number;
  /** Inclusive last column of the offending text when it lies on `line`. */
  endCol?: number;
  message: string;
  severity: 'error';
}

export function diagnosticAt(file: string, loc: Loc, message: string): Diagnostic {
  const d: Diagnostic = { file, line: loc.line, col: loc.col, message, severity: 'error' };
  // A multi-line span is underlined from its start only: the caret line
  // can show just one source line.
  if (loc.endLine === loc.line && loc.endCol >= loc.col) d.endCol = loc.endCol;
  return d;
}

/** Order diagnostics by position so output reads top to bottom. */
export function sortDiagnostics(ds: Diagnostic[]): Diagnostic[] {
  return [...ds].sort((a, b) => a.line - b.line || a.col - b.col);
}

/** The text without a leading UTF-8 byte-order mark (the parser drops it, so columns skip it). */
export function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

function sourceLine(text: string, line: number): string | undefined {
  return stripBom(text).split(/\r\n|\r|\n/)[line - 1];
}

/** Longest source line echoed whole; longer ones show a window of about this width around the caret. */
export const SOURCE_WINDOW = 120;
const ELLIPSIS = '...';

/**
 * `file:line:col: error: message`, then the source line and `^~~~` under the
 * offending text. The caret line copies tabs from the source so it stays
 * aligned whatever the terminal's tab width. A line longer than SOURCE_WINDOW
 * (a minified or generated file, a binary one) shows only the part around the
 * caret, with `...` where it was cut, so one diagnostic stays one screen line.
 */
export function formatDiagnostic(d: Diagnostic, sourceText: string): string {
  const head = `${d.file}:${d.line}:${d.col}: ${d.severity}: ${d.message}`;
  const src = sourceLine(sourceText, d.line);
  if (src === undefined) return head;
  // Never underline past the end of the line (an error at end of line or
  // file points just after the last character).
  const last = Math.min(d.endCol ?? d.col, Math.max(d.col, src.length));
  let from = 0, to = src.length;
  if (src.length > SOURCE_WINDOW) {
    // Keep the caret's start a third of the way in; the underline may be cut at the right.
    from = Math.max(0, Math.min(d.col - 1 - Math.floor(SOURCE_WINDOW / 3), src.length - SOURCE_WINDOW));
    to = Math.min(src.length, from + SOURCE_WINDOW);
  }
  const pre = from > 0 ? ELLIPSIS : '';
  const shown = pre + src.slice(from, to) + (to < src.length ? ELLIPSIS : '');
  const pad = (pre + src.slice(from, d.col - 1)).replace(/[^\t]/g, ' ');
  const caretEnd = Math.min(last, to + 1);
  const caret = '^' + '~'.repeat(Math.max(0, caretEnd - d.col));
  return `${head}\n${shown}\n${pad}${caret}`;
}

export function formatDiagnostics(ds: Diagnostic[], sourceText: string): string {
  return ds.map((d) => formatDiagnostic(d, sourceText)).join('\n');
}
