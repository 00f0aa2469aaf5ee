// The .infer grammar as a chevrotain CstParser: pure syntax, no actions.
// Meaning (sections at most once, `return` last, config values...) is checked
// by the CST visitor in toAst.ts and by config.ts, where a problem can be
// reported with the position of everything involved.
//
// Blocks are `{ (separator | item)* }`: newline and ';' both separate, and
// blank lines or stray ';' are harmless. Two items on one line with no ';'
// between them parse, and toAst reports the missing separator; that keeps the
// grammar LL(1) at block level and the message precise.
//
// Extending: a new section (e.g. `draft`) is a keyword plus an alternative in
// `modelItem`; block-bodied calls (`moe(...) { e => expr }`) would extend
// `primary` after the argument list.
import { CstParser, type CstNode, type IRecognitionException, type IToken } from 'chevrotain';
import * as T from './tokens.ts';
import { FriendlyErrors } from './parseErrors.ts';

class InferParser extends CstParser {
  constructor(readonly messages: FriendlyErrors) {
    super(T.allTokens, { nodeLocationTracking: 'full', recoveryEnabled: false, errorMessageProvider: messages, maxLookahead: 2 });
    this.performSelfAnalysis();
  }

  // The first model is the one a command runs; later ones can serve as its drafts.
  file = this.RULE('file', () => {
    this.MANY(() => this.SUBRULE(this.sep));
    this.SUBRULE(this.model);
    this.MANY2(() => this.OR([{ ALT: () => this.SUBRULE2(this.sep) }, { ALT: () => this.SUBRULE2(this.model) }]));
  });

  sep = this.RULE('sep', () => {
    this.OR([{ ALT: () => this.CONSUME(T.Newline) }, { ALT: () => this.CONSUME(T.Semicolon) }]);
  });

  // model NAME { items }
  model = this.RULE('model', () => {
    this.CONSUME(T.Model);
    this.CONSUME(T.Identifier);
    this.MANY(() => this.CONSUME(T.Newline));
    this.CONSUME(T.LCurly);
    this.MANY2(() => this.OR([{ ALT: () => this.SUBRULE(this.sep) }, { ALT: () => this.SUBRULE(this.modelItem) }]));
    this.CONSUME(T.RCurly);
  });

  modelItem = this.RULE('modelItem', () => {
    this.OR([
      { ALT: () => this.SUBRULE(this.configSection) },
      { ALT: () => this.SUBRULE(this.kvCacheSection) },
      { ALT: () => this.SUBRULE(this.weightsDecl) },
      { ALT: () => this.SUBRULE(this.paramsSection) },
      { ALT: () => this.SUBRULE(this.layerDecl) },
      { ALT: () => this.SUBRULE(this.speculativeSection) },
      { ALT: () => this.SUBRULE(this.binding) },
    ]);
  });

  // speculative { draft = "d.infer" | Name; lookahead = 4; ... }: values may be quoted file names.
  speculativeSection = this.RULE('speculativeSection', () => {
    this.CONSUME(T.Speculative);
    this.MANY(() => this.CONSUME(T.Newline));
    this.CONSUME(T.LCurly);
    this.MANY2(() => this.OR([{ ALT: () => this.SUBRULE(this.sep) }, { ALT: () => this.SUBRULE(this.specEntry) }]));
    this.CONSUME(T.RCurly);
  });

  specEntry = this.RULE('specEntry', () => {
    this.CONSUME(T.Identifier);
    this.CONSUME(T.Equals);
    this.OR([{ ALT: () => this.CONSUME(T.StringLiteral) }, { ALT: () => this.SUBRULE(this.expression) }]);
  });

  configSection = this.RULE('configSection', () => {
    this.CONSUME(T.Config);
    this.SUBRULE(this.bindingBlock);
  });

  kvCacheSection = this.RULE('kvCacheSection', () => {
    this.CONSUME(T.KvCache);
    this.SUBRULE(this.bindingBlock);
  });

  // { name = expr ... } for config and kv_cache
  bindingBlock = this.RULE('bindingBlock', () => {
    this.MANY(() => this.CONSUME(T.Newline));
    this.CONSUME(T.LCurly);
    this.MANY2(() => this.OR([{ ALT: () => this.SUBRULE(this.sep) }, { ALT: () => this.SUBRULE(this.binding) }]));
    this.CONSUME(T.RCurly);
  });

  // weights NAME or weights NAME(arg = expr, ...)
  weightsDecl = this.RULE('weightsDecl', () => {
    this.CONSUME(T.Weights);
    this.CONSUME(T.Identifier);
    this.OPTION(() => this.SUBRULE(this.argList));
  });

  // params { name: [dims] ... }
  paramsSection = this.RULE('paramsSection', () => {
    this.CONSUME(T.Params);
    this.MANY(() => this.CONSUME(T.Newline));
    this.CONSUME(T.LCurly);
    this.MANY2(() => this.OR([{ ALT: () => this.SUBRULE(this.sep) }, { ALT: () => this.SUBRULE(this.typedName) }]));
    this.CONSUME(T.RCurly);
  });

  // layer NAME (x: [dims], ...) -> [dims] { params? assignments return }
  layerDecl = this.RULE('layerDecl', () => {
    this.CONSUME(T.Layer);
    this.CONSUME(T.Identifier);
    this.CONSUME(T.LParen);
    this.OPTION(() => {
      this.SUBRULE(this.typedName);
      this.MANY(() => {
        this.CONSUME(T.Comma);
        this.SUBRULE2(this.typedName);
      });
    });
    this.CONSUME(T.RParen);
    this.MANY4(() => this.CONSUME2(T.Newline)); // a long signature may wrap before '->'
    this.CONSUME(T.Arrow);
    this.SUBRULE(this.list);
    this.MANY2(() => this.CONSUME(T.Newline));
    this.CONSUME(T.LCurly);
    this.MANY3(() =>
      this.OR([
        { ALT: () => this.SUBRULE(this.sep) },
        { ALT: () => this.SUBRULE(this.paramsSection) },
        { ALT: () => this.SUBRULE(this.returnStmt) },
        { ALT: () => this.SUBRULE(this.binding) },
      ]),
    );
    this.CONSUME(T.RCurly);
  });

  returnStmt = this.RULE('returnStmt', () => {
    this.CONSUME(T.Return);
    this.SUBRULE(this.expression);
  });

  binding = this.RULE('binding', () => {
    this.CONSUME(T.Identifier);
    this.CONSUME(T.Equals);
    this.SUBRULE(this.expression);
  });

  typedName = this.RULE('typedName', () => {
    this.CONSUME(T.Identifier);
    this.CONSUME(T.Colon);
    this.SUBRULE(this.list);
  });

  // Precedence climbs: expression (+ -) < term (* / % @) < unary (-) < postfix.
  // No continuation after a trailing operator: a statement ends at the end of
  // the line unless inside brackets, so `x = a +` reports the missing operand
  // right there instead of swallowing the next statement.
  expression = this.RULE('expression', () => {
    this.SUBRULE(this.term);
    this.MANY(() => {
      this.CONSUME(T.AdditiveOp);
      this.SUBRULE2(this.term);
    });
  });

  term = this.RULE('term', () => {
    this.SUBRULE(this.unary);
    this.MANY(() => {
      this.CONSUME(T.MultiplicativeOp);
      this.SUBRULE2(this.unary);
    });
  });

  unary = this.RULE('unary', () => {
    this.OR([
      {
        ALT: () => {
          this.CONSUME(T.Minus);
          this.SUBRULE(this.unary);
        },
      },
      { ALT: () => this.SUBRULE(this.postfix) },
    ]);
  });

  postfix = this.RULE('postfix', () => {
    this.SUBRULE(this.primary);
    this.MANY(() => {
      this.CONSUME(T.Dot);
      this.CONSUME(T.Identifier);
    });
  });

  // A name directly followed by '(' is a call; `causal` alone is a name.
  primary = this.RULE('primary', () => {
    this.OR([
      {
        ALT: () => {
          this.CONSUME(T.Identifier);
          this.OPTION(() => {
            this.SUBRULE(this.argList);
            this.OPTION2(() => this.SUBRULE(this.lambdaBlock));
          });
        },
      },
      { ALT: () => this.CONSUME(T.NumberLiteral) },
      { ALT: () => this.SUBRULE(this.parenExpr) },
      { ALT: () => this.SUBRULE(this.list) },
    ]);
  });

  // The body of a block-bodied call: `{ e => expr }` (moe's expert body). Newlines
  // may surround the parameter and the body.
  lambdaBlock = this.RULE('lambdaBlock', () => {
    this.CONSUME(T.LCurly);
    this.MANY(() => this.CONSUME(T.Newline));
    this.CONSUME(T.Identifier);
    this.CONSUME(T.FatArrow);
    this.MANY2(() => this.CONSUME2(T.Newline));
    this.SUBRULE(this.expression);
    this.MANY3(() => this.CONSUME3(T.Newline));
    this.CONSUME(T.RCurly);
  });

  parenExpr = this.RULE('parenExpr', () => {
    this.CONSUME(T.LParen);
    this.SUBRULE(this.expression);
    this.CONSUME(T.RParen);
  });

  list = this.RULE('list', () => {
    this.CONSUME(T.LBracket);
    this.OPTION(() => {
      this.SUBRULE(this.expression);
      this.MANY(() => {
        this.CONSUME(T.Comma);
        this.SUBRULE2(this.expression);
      });
    });
    this.CONSUME(T.RBracket);
  });

  argList = this.RULE('argList', () => {
    this.CONSUME(T.LParen);
    this.OPTION(() => {
      this.SUBRULE(this.argument);
      this.MANY(() => {
        this.CONSUME(T.Comma);
        this.SUBRULE2(this.argument);
      });
    });
    this.CONSUME(T.RParen);
  });

  // `name = expr` (named) or a positional expression; two tokens decide.
  argument = this.RULE('argument', () => {
    this.OR([
      {
        ALT: () => {
          this.CONSUME(T.Identifier);
          this.CONSUME(T.Equals);
          this.SUBRULE(this.expression);
        },
      },
      { ALT: () => this.SUBRULE2(this.expression) },
    ]);
  });
}

// One parser for the process: building it runs chevrotain's grammar analysis,
// which is far more expensive than a parse. `parse` resets it on each use.
const messages = new FriendlyErrors();
export const parser = new InferParser(messages);

export interface ParseResult {
  cst: CstNode | undefined;
  errors: IRecognitionException[];
}

/** Parses a token stream from `lex`. Syntax errors carry friendly messages. */
export function parseTokens(tokens: IToken[]): ParseResult {
  messages.tokens = tokens;
  parser.input = tokens;
  const cst = parser.file();
  const errors = parser.errors;
  messages.tokens = [];
  return { cst, errors };
}
