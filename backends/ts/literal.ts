// JSON-like data (the Program, rendered kernels, config constants) as TypeScript expression
// nodes built with the compiler's node factory, so every string that reaches generated
// code (a model name, a kernel's source) is a literal the printer escapes, never text
// pasted into the module. Non-finite numbers and non-plain objects are refused: they have
// no faithful literal, and a silent null would be a wrong program.
import { ts } from 'ts-morph';

const f = ts.factory;
const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** A reserved word (class, default, ...) or other keyword, which cannot stand as a bare name everywhere. */
const isKeyword = (s: string): boolean => ts.identifierToKeywordKind(f.createIdentifier(s)) !== undefined;

export class LiteralError extends Error {}

/** A property name: a bare identifier when it is one (and not reserved), else a string literal. */
export function propertyName(key: string): ts.PropertyName {
  return IDENT.test(key) && !isKeyword(key) ? f.createIdentifier(key) : f.createStringLiteral(key);
}

/** Long multi-line strings (kernel sources) print as template literals, keeping their lines readable. */
function stringLiteral(s: string): ts.Expression {
  return s.includes('\n') ? f.createNoSubstitutionTemplateLiteral(s) : f.createStringLiteral(s);
}

function numberLiteral(n: number, at: string): ts.Expression {
  if (!Number.isFinite(n)) throw new LiteralError(`${at}: ${n} has no literal in generated code`);
  if (Object.is(n, -0)) return f.createPrefixUnaryExpression(ts.SyntaxKind.MinusToken, f.createNumericLiteral(0));
  return n < 0 ? f.createPrefixUnaryExpression(ts.SyntaxKind.MinusToken, f.createNumericLiteral(String(-n))) : f.createNumericLiteral(String(n));
}

/** The expression for a value made of null, booleans, finite numbers, strings, arrays and plain objects. */
export function literal(value: unknown, at = 'value'): ts.Expression {
  if (value === null) return f.createNull();
  switch (typeof value) {
    case 'boolean': return value ? f.createTrue() : f.createFalse();
    case 'number': return numberLiteral(value, at);
    case 'string': return stringLiteral(value);
    case 'object': break;
    default: throw new LiteralError(`${at}: a ${typeof value} has no literal in generated code`);
  }
  if (Array.isArray(value)) return f.createArrayLiteralExpression(value.map((v, i) => literal(v, `${at}[${i}]`)), value.length > 8);
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) throw new LiteralError(`${at}: a ${proto?.constructor?.name ?? 'non-plain'} object has no literal in generated code`);
  const props = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => f.createPropertyAssignment(propertyName(k), literal(v, `${at}.${k}`)));
  return f.createObjectLiteralExpression(props, props.length > 4);
}

const printer = ts.createPrinter({ newLine: ts.NewLineKind.LineFeed });
const scratch = ts.createSourceFile('literal.ts', '', ts.ScriptTarget.ES2022, false, ts.ScriptKind.TS);

/** Prints a node the factory built (what ts-morph then places as an initializer). */
export function printNode(node: ts.Node): string {
  return printer.printNode(ts.EmitHint.Unspecified, node, scratch);
}

/** A TypeScript identifier from user text: [A-Za-z0-9_] only, not starting with a digit, not reserved. */
export function sanitizeIdentifier(text: string, fallback = 'Model'): string {
  let id = text.replace(/[^A-Za-z0-9_]/g, '_').replace(/^_+|_+$/g, '');
  if (id === '') id = fallback;
  if (/^[0-9]/.test(id)) id = `_${id}`;
  return isKeyword(id) ? `${id}_` : id;
}
