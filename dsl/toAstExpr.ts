// CST -> AST, part 1: the visitor's base class with the shared helpers and
// everything below a statement (expressions, argument lists). toAst.ts
// extends it with the structure of models, sections and layers; chevrotain
// wants one visitor class covering every rule, and this split keeps each
// file about one concern.
import type { CstElement, CstNode, IToken } from 'chevrotain';
import type * as A from './ast.ts';
import { type Diagnostic, diagnosticAt } from './diagnostics.ts';
import { cstLoc, type Loc, spanLoc, tokenLoc, where } from './loc.ts';
import { parser } from './parser.ts';

export type Ctx = Record<string, CstElement[] | undefined>;
export interface Args {
  args: A.Expr[];
  named: A.NamedArg[];
}
type Argument = { named: A.NamedArg } | { positional: A.Expr };

export const toks = (ctx: Ctx, key: string): IToken[] => (ctx[key] ?? []) as IToken[];
export const nodes = (ctx: Ctx, key: string): CstNode[] => (ctx[key] ?? []) as CstNode[];
export const tok = (ctx: Ctx, key: string, i = 0): IToken => toks(ctx, key)[i];
export const node = (ctx: Ctx, key: string, i = 0): CstNode => nodes(ctx, key)[i];
export const byOffset = (a: CstNode, b: CstNode): number => (a.location?.startOffset ?? 0) - (b.location?.startOffset ?? 0);

const BaseVisitor = parser.getBaseCstVisitorConstructor();

export class ExprBuilder extends BaseVisitor {
  readonly diagnostics: Diagnostic[] = [];

  constructor(readonly fileName: string) {
    super();
  }

  protected error(loc: Loc, message: string): void {
    this.diagnostics.push(diagnosticAt(this.fileName, loc, message));
  }

  /** Visits `n`, handing the node itself to the method for its location. */
  protected run(n: CstNode): unknown {
    return this.visit(n, n);
  }

  protected expr(n: CstNode): A.Expr {
    return this.run(n) as A.Expr;
  }

  /** Left-assoc fold shared by the two binary precedence levels. */
  private fold(operands: CstNode[], ops: IToken[]): A.Expr {
    let left = this.expr(operands[0]);
    ops.forEach((op, i) => {
      const right = this.expr(operands[i + 1]);
      left = { kind: 'binary', op: op.image as A.BinaryOp, left, right, opLoc: tokenLoc(op), loc: spanLoc(left.loc, right.loc) };
    });
    return left;
  }

  expression(ctx: Ctx): A.Expr {
    return this.fold(nodes(ctx, 'term'), toks(ctx, 'AdditiveOp'));
  }

  term(ctx: Ctx): A.Expr {
    return this.fold(nodes(ctx, 'unary'), toks(ctx, 'MultiplicativeOp'));
  }

  unary(ctx: Ctx): A.Expr {
    if (!ctx.Minus) return this.expr(node(ctx, 'postfix'));
    const arg = this.expr(node(ctx, 'unary'));
    return { kind: 'neg', arg, loc: spanLoc(tokenLoc(tok(ctx, 'Minus')), arg.loc) };
  }

  postfix(ctx: Ctx): A.Expr {
    let e = this.expr(node(ctx, 'primary'));
    for (const member of toks(ctx, 'Identifier')) {
      e = { kind: 'member', object: e, name: member.image, loc: spanLoc(e.loc, tokenLoc(member)) };
    }
    return e;
  }

  primary(ctx: Ctx, self: CstNode): A.Expr {
    if (ctx.Identifier) {
      const t = tok(ctx, 'Identifier');
      if (!ctx.argList) return { kind: 'ident', name: t.image, loc: tokenLoc(t) };
      const { args, named } = this.run(node(ctx, 'argList')) as Args;
      const call: A.CallExpr = { kind: 'call', callee: t.image, calleeLoc: tokenLoc(t), args, named, loc: cstLoc(self.location) };
      if (ctx.lambdaBlock) call.block = this.run(node(ctx, 'lambdaBlock')) as A.LambdaBlock;
      return call;
    }
    if (ctx.NumberLiteral) {
      const t = tok(ctx, 'NumberLiteral');
      return { kind: 'num', value: Number(t.image), text: t.image, loc: tokenLoc(t) };
    }
    if (ctx.parenExpr) return this.expr(node(ctx, 'parenExpr'));
    return this.expr(node(ctx, 'list'));
  }

  lambdaBlock(ctx: Ctx, self: CstNode): A.LambdaBlock {
    const p = tok(ctx, 'Identifier');
    return { param: p.image, paramLoc: tokenLoc(p), body: this.expr(node(ctx, 'expression')), loc: cstLoc(self.location) };
  }

  // The parentheses become part of the location, so spans of enclosing
  // binary expressions cover them.
  parenExpr(ctx: Ctx, self: CstNode): A.Expr {
    return { ...this.expr(node(ctx, 'expression')), loc: cstLoc(self.location) };
  }

  list(ctx: Ctx, self: CstNode): A.ListExpr {
    return { kind: 'list', items: nodes(ctx, 'expression').map((n) => this.expr(n)), loc: cstLoc(self.location) };
  }

  argList(ctx: Ctx): Args {
    const out: Args = { args: [], named: [] };
    const seen = new Map<string, Loc>();
    for (const n of nodes(ctx, 'argument')) {
      const a = this.run(n) as Argument;
      if ('positional' in a) {
        if (out.named.length > 0) this.error(a.positional.loc, 'positional argument after a named argument');
        out.args.push(a.positional);
        continue;
      }
      const first = seen.get(a.named.name);
      if (first) this.error(a.named.loc, `duplicate argument '${a.named.name}' (first at ${where(first)})`);
      seen.set(a.named.name, a.named.loc);
      out.named.push(a.named);
    }
    return out;
  }

  argument(ctx: Ctx, self: CstNode): Argument {
    const value = this.expr(node(ctx, 'expression'));
    if (!ctx.Identifier) return { positional: value };
    return { named: { name: tok(ctx, 'Identifier').image, value, loc: cstLoc(self.location) } };
  }
}
