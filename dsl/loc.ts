// Source locations. Lines and columns are 1-based; endCol is inclusive (the
// column of the last character), matching chevrotain's token positions, and
// `length` counts UTF-16 code units from `offset`.
import type { CstNodeLocation, IToken } from 'chevrotain';

export interface Loc {
  line: number;
  col: number;
  endLine: number;
  endCol: number;
  offset: number;
  length: number;
}

/** Location of a single token. */
export function tokenLoc(tok: IToken): Loc {
  const line = tok.startLine ?? 1;
  const col = tok.startColumn ?? 1;
  return {
    line, col,
    endLine: tok.endLine ?? line,
    endCol: tok.endColumn ?? col,
    offset: tok.startOffset,
    length: (tok.endOffset ?? tok.startOffset) - tok.startOffset + 1,
  };
}

/** Location of a CST node (needs nodeLocationTracking: 'full'). */
export function cstLoc(location: CstNodeLocation | undefined): Loc {
  if (!location || Number.isNaN(location.startOffset)) {
    return { line: 1, col: 1, endLine: 1, endCol: 1, offset: 0, length: 0 };
  }
  const line = location.startLine ?? 1;
  const col = location.startColumn ?? 1;
  const endOffset = location.endOffset ?? location.startOffset;
  return {
    line, col,
    endLine: location.endLine ?? line,
    endCol: location.endColumn ?? col,
    offset: location.startOffset,
    length: endOffset - location.startOffset + 1,
  };
}

/** The smallest location covering both `a` and `b` (a before b). */
export function spanLoc(a: Loc, b: Loc): Loc {
  return {
    line: a.line, col: a.col,
    endLine: b.endLine, endCol: b.endCol,
    offset: a.offset,
    length: b.offset + b.length - a.offset,
  };
}

/** "line:col" for messages that refer to another place in the file. */
export function where(loc: Loc): string {
  return `${loc.line}:${loc.col}`;
}
