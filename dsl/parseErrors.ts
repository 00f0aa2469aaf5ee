// Friendly syntax-error messages. Chevrotain calls this provider when a parse
// fails; we know the token stream, so an unclosed block can name the block
// and where it was opened ("expected '}' to close 'layer' block opened at
// 12:3") instead of chevrotain's "Expecting token of type --> RCurly <--".
import { EOF, type IParserErrorMessageProvider, type IToken, type TokenType } from 'chevrotain';
import * as T from './tokens.ts';
import { describeToken } from './tokens.ts';

const EXPRESSION_RULES = new Set(['expression', 'term', 'unary', 'postfix', 'primary', 'parenExpr', 'argument', 'list']);
const OPENERS = new Map<TokenType, TokenType>([
  [T.LCurly, T.RCurly],
  [T.LParen, T.RParen],
  [T.LBracket, T.RBracket],
]);

const pos = (tok: IToken): string => `${tok.startLine}:${tok.startColumn}`;
const isEof = (tok: IToken | undefined): boolean => !tok || tok.tokenType === EOF;

export class FriendlyErrors implements IParserErrorMessageProvider {
  /** The token vector being parsed; set by parseTokens around each parse. */
  tokens: IToken[] = [];

  /** Brackets still open just before `at` (all of them at end of file). */
  private openBefore(at: IToken): IToken[] {
    const stack: IToken[] = [];
    for (const tok of this.tokens) {
      if (!isEof(at) && tok.startOffset >= at.startOffset) break;
      if (OPENERS.has(tok.tokenType)) stack.push(tok);
      else if (tok.tokenType === T.RCurly) {
        // A '}' closes everything opened since its '{'.
        while (stack.length > 0 && stack.pop()!.tokenType !== T.LCurly);
      } else if (tok.tokenType === T.RParen || tok.tokenType === T.RBracket) {
        if (stack.length > 0 && stack[stack.length - 1].tokenType !== T.LCurly) stack.pop();
      }
    }
    return stack;
  }

  private innermost(at: IToken, opener: TokenType): IToken | undefined {
    return this.openBefore(at).reverse().find((t) => t.tokenType === opener);
  }

  /** The statement keyword that owns the block opened by `brace`. */
  private blockOwner(brace: IToken): IToken {
    let i = this.tokens.indexOf(brace) - 1;
    // Newlines may sit between a header and its '{'; skip those, then walk
    // back to the start of the header statement.
    while (i >= 0 && this.tokens[i].tokenType === T.Newline) i--;
    let owner = brace;
    for (; i >= 0; i--) {
      const t = this.tokens[i].tokenType;
      if (t === T.Newline || t === T.Semicolon || t === T.LCurly || t === T.RCurly) break;
      owner = this.tokens[i];
    }
    return owner;
  }

  private blockName(owner: IToken): string {
    return T.KEYWORDS.includes(owner.tokenType) ? owner.image : 'block';
  }

  buildMismatchTokenMessage(o: { expected: TokenType; actual: IToken; previous: IToken; ruleName: string }): string {
    const { expected, actual, previous, ruleName } = o;
    const found = describeToken(actual);
    const prev = previous?.image ? `'${previous.image}'` : 'the start';
    if (expected === T.RCurly) {
      const brace = this.innermost(actual, T.LCurly);
      if (!brace) return `unexpected ${found}`;
      const owner = this.blockOwner(brace);
      const name = this.blockName(owner);
      if (isEof(actual)) return `expected '}' to close '${name}' block opened at ${pos(owner)}`;
      const what =
        name === 'config' || name === 'kv_cache' ? "'name = value'" : name === 'params' ? "'name: [dims]'" : 'a statement';
      return `unexpected ${found} in '${name}' block opened at ${pos(owner)}; expected ${what}, a newline or '}'`;
    }
    if (expected === T.RParen || expected === T.RBracket) {
      const open = expected === T.RParen ? T.LParen : T.LBracket;
      const opener = this.innermost(actual, open);
      const close = expected === T.RParen ? "')'" : "']'";
      const comma = ruleName === 'parenExpr' ? '' : "',' or ";
      const at = opener ? ` to close '${opener.image}' opened at ${pos(opener)}` : '';
      return `expected ${comma}${close}${at}, found ${found}`;
    }
    if (expected === T.LCurly) {
      const owner = ruleName === 'model' ? 'model' : ruleName === 'layerDecl' ? 'layer' : ruleName === 'paramsSection' ? 'params' : previous?.image;
      return `expected '{' to start the '${owner}' body, found ${found}`;
    }
    if (expected === T.Equals) return `expected '=' after ${prev}, found ${found}`;
    if (expected === T.Colon) return `expected ':' after ${prev} (declarations are 'name: [dims]'), found ${found}`;
    if (expected === T.LBracket) return `expected a shape like [dim, vocab], found ${found}`;
    if (expected === T.Arrow) return `expected '->' and the output shape after the layer inputs, found ${found}`;
    if (expected === T.Model) return `expected 'model NAME { ... }', found ${found}`;
    if (expected === T.Identifier) {
      if (ruleName === 'model') return `expected a model name after 'model', found ${found}`;
      if (ruleName === 'layerDecl') return `expected a layer name after 'layer', found ${found}`;
      if (ruleName === 'weightsDecl') return `expected a weights source after 'weights' (e.g. gguf or random(seed = 7)), found ${found}`;
      if (ruleName === 'postfix') return `expected a member name after '.', found ${found}`;
    }
    return `expected ${expected.LABEL ?? expected.name}, found ${found}`;
  }

  buildNotAllInputParsedMessage(o: { firstRedundant: IToken; ruleName: string }): string {
    if (o.firstRedundant.tokenType === T.Model) return `unexpected 'model': only one model per file`;
    return `unexpected ${describeToken(o.firstRedundant)} after the end of the model`;
  }

  buildNoViableAltMessage(o: { actual: IToken[]; previous: IToken; ruleName: string }): string {
    const found = describeToken(o.actual[0]);
    if (EXPRESSION_RULES.has(o.ruleName)) return `unexpected ${found}, expected an expression`;
    return `unexpected ${found}`;
  }

  buildEarlyExitMessage(o: { actual: IToken[]; previous: IToken; ruleName: string }): string {
    return `unexpected ${describeToken(o.actual[0])}`;
  }
}
