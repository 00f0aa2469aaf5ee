// Lexer for the .infer language.
//
// Newlines are real tokens because they end statements, but a newline inside
// ( ) or [ ] is only layout: `lex` drops those after chevrotain has tokenised,
// so the grammar never has to think about line continuations inside brackets.
// Anything number-shaped is lexed as one NumberLiteral (even `1e` or `1.2.3`)
// and then checked here, so a malformed number gets one precise diagnostic
// instead of a confusing cascade of "unexpected identifier 'e'".
import { createToken, Lexer, type IToken, type TokenType } from 'chevrotain';
import { type Diagnostic, diagnosticAt } from './diagnostics.ts';
import { tokenLoc } from './loc.ts';

export const Identifier = createToken({ name: 'Identifier', pattern: /[A-Za-z_][A-Za-z0-9_]*/, label: 'a name' });

// Keywords are reserved; `longer_alt` keeps `layers` or `models` identifiers.
const keyword = (word: string): TokenType =>
  createToken({ name: `Kw_${word}`, pattern: word, longer_alt: Identifier, label: `'${word}'` });
export const Model = keyword('model');
export const Config = keyword('config');
export const KvCache = keyword('kv_cache');
export const Weights = keyword('weights');
export const Params = keyword('params');
export const Layer = keyword('layer');
export const Return = keyword('return');
export const Speculative = keyword('speculative');
export const KEYWORDS: readonly TokenType[] = [Model, Config, KvCache, Weights, Params, Layer, Return, Speculative];

// Greedy on purpose: digits, letters, dots, underscores and an exponent sign
// all stick to the number so that `validateNumber` sees the whole mistake.
export const NumberLiteral = createToken({
  name: 'NumberLiteral',
  pattern: /(?:\d|\.\d)(?:[eE][+-]|[0-9A-Za-z_.])*/,
  start_chars_hint: ['.', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
  label: 'a number',
});

// A double-quoted file name (speculative { draft = "draft.infer" }); no escapes, one line.
export const StringLiteral = createToken({ name: 'StringLiteral', pattern: /"[^"\r\n]*"/, label: 'a quoted string' });

export const AdditiveOp = createToken({ name: 'AdditiveOp', pattern: Lexer.NA });
export const MultiplicativeOp = createToken({ name: 'MultiplicativeOp', pattern: Lexer.NA });
const punct = (name: string, pattern: string, categories?: TokenType[]): TokenType =>
  createToken({ name, pattern, label: `'${pattern}'`, ...(categories ? { categories } : {}) });
export const Arrow = punct('Arrow', '->'); // before Minus: longest first
export const Plus = punct('Plus', '+', [AdditiveOp]);
export const Minus = punct('Minus', '-', [AdditiveOp]);
export const Star = punct('Star', '*', [MultiplicativeOp]);
export const Slash = punct('Slash', '/', [MultiplicativeOp]);
export const Percent = punct('Percent', '%', [MultiplicativeOp]);
export const At = punct('At', '@', [MultiplicativeOp]);
export const FatArrow = punct('FatArrow', '=>'); // before Equals: longest first
export const Equals = punct('Equals', '=');
export const Colon = punct('Colon', ':');
export const Semicolon = punct('Semicolon', ';');
export const Comma = punct('Comma', ',');
export const Dot = punct('Dot', '.');
export const LParen = punct('LParen', '(');
export const RParen = punct('RParen', ')');
export const LBracket = punct('LBracket', '[');
export const RBracket = punct('RBracket', ']');
export const LCurly = punct('LCurly', '{');
export const RCurly = punct('RCurly', '}');

export const Newline = createToken({
  name: 'Newline',
  pattern: /\r\n|\r|\n/,
  line_breaks: true,
  label: 'end of line',
});
const Whitespace = createToken({ name: 'Whitespace', pattern: /[ \t\f\v]+/, group: Lexer.SKIPPED });
const Comment = createToken({ name: 'Comment', pattern: /#[^\r\n]*/, group: Lexer.SKIPPED });

export const allTokens: TokenType[] = [
  Whitespace, Comment, Newline,
  ...KEYWORDS, Identifier, NumberLiteral, StringLiteral,
  AdditiveOp, MultiplicativeOp,
  Arrow, Plus, Minus, Star, Slash, Percent, At,
  FatArrow, Equals, Colon, Semicolon, Comma, Dot,
  LParen, RParen, LBracket, RBracket, LCurly, RCurly,
];

const lexer = new Lexer(allTokens, { positionTracking: 'full', ensureOptimizations: true });

const MAX_NESTING = 64;

const VALID_NUMBER = /^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

/** Why a number-shaped token is not a number, or null when it is fine. */
export function validateNumber(text: string): string | null {
  if (VALID_NUMBER.test(text)) {
    return Number.isFinite(Number(text)) ? null : `number '${text}' is too large`;
  }
  if (/^0[xXbBoO]/.test(text)) return `malformed number '${text}': only decimal numbers are supported`;
  if ((text.match(/\./g) ?? []).length > 1) return `malformed number '${text}': more than one '.'`;
  if (/[eE][+-]?$/.test(text)) return `malformed number '${text}': exponent has no digits`;
  return `malformed number '${text}'`;
}

/** Printable form of an unexpected character for messages. */
function showChar(ch: string): string {
  const code = ch.codePointAt(0) ?? 0;
  if (code < 0x20 || code === 0x7f) return `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
  return `'${String.fromCodePoint(code)}'`;
}

export interface LexResult {
  tokens: IToken[];
  diagnostics: Diagnostic[];
}

/**
 * Tokenises `text`. Returns the token stream the parser expects (newlines inside
 * brackets removed) and a diagnostic for every bad character or number.
 */
export function lex(text: string, file: string): LexResult {
  const result = lexer.tokenize(text);
  const diagnostics: Diagnostic[] = [];
  for (const err of result.errors) {
    const ch = text.slice(err.offset, err.offset + 2);
    diagnostics.push({
      file, line: err.line ?? 1, col: err.column ?? 1,
      endCol: (err.column ?? 1) + Math.max(0, err.length - 1),
      message: `unexpected character ${showChar(ch)}`,
      severity: 'error',
    });
  }
  const tokens: IToken[] = [];
  // Open ( and [ tokens; a brace resets it, since brackets never span blocks:
  // that confines the damage of an unclosed '(' to the statement it is in.
  let depth = 0;
  let tooDeep = false;
  // The parser (and the AST walks after it) recurse once per level of brackets, of
  // braces (moe bodies nest through them), per unary '-' in a row (`- - - x`) and per
  // '.' in a member chain: refuse absurd nesting with a diagnostic at the token that
  // goes too deep rather than a stack overflow. Long flat chains (`a + b + ...`) are fine.
  let braces = 0;
  let minuses = 0;
  let dots = 0;
  let prev: IToken | undefined;
  const nest = (tok: IToken, level: number, what: string) => {
    if (level <= MAX_NESTING || tooDeep) return;
    tooDeep = true;
    diagnostics.push(diagnosticAt(file, tokenLoc(tok), `${what} nested more than ${MAX_NESTING} levels deep`));
  };
  for (const tok of result.tokens) {
    const type = tok.tokenType;
    minuses = type === Minus ? (prev?.tokenType === Minus ? minuses + 1 : 1) : 0;
    dots = type === Dot ? dots + 1 : type === Identifier && prev?.tokenType === Dot ? dots : 0;
    prev = tok;
    nest(tok, minuses, "unary '-'");
    nest(tok, dots, 'member accesses');
    if (type === LParen || type === LBracket) nest(tok, ++depth + braces, 'brackets');
    else if (type === RParen || type === RBracket) depth = Math.max(0, depth - 1);
    else if (type === LCurly || type === RCurly) {
      depth = 0;
      braces = Math.max(0, braces + (type === LCurly ? 1 : -1));
      nest(tok, braces, 'braces');
    }
    else if (type === Newline && depth > 0) continue;
    else if (type === NumberLiteral) {
      const problem = validateNumber(tok.image);
      if (problem) diagnostics.push(diagnosticAt(file, tokenLoc(tok), problem));
    }
    tokens.push(tok);
  }
  return { tokens, diagnostics };
}

/** Human description of a token for "found X" in messages. */
export function describeToken(tok: IToken | undefined): string {
  if (!tok || tok.tokenType.name === 'EOF') return 'end of file';
  if (tok.tokenType === Newline) return 'end of line';
  return `'${tok.image}'`;
}
