// One handlebars environment per backend, set up the same way for every C-like target:
// templates are fixed, hand-written algorithms whose holes take only compile-time
// constants; every number passes through a helper that formats it safely (`u` unsigned,
// `i` signed, `f` float, `floats` a constant table); compiled with strict (a missing field
// is an error, not an empty string) and noEscape (kernel source is not HTML). Templates
// are read once from the backend's own templates/ folder.
import { readFileSync } from 'node:fs';
import Handlebars from 'handlebars';
import { floatText, intText, uintText } from './literal.ts';

export interface TemplateEnv {
  /** Fills template `name` with `context`; blank-line runs left by block helpers collapse to one. */
  fill(name: string, context: Record<string, unknown>): string;
}

export interface TemplateEnvOptions {
  /** The templates folder (a file: URL ending in '/'). */
  readonly dir: URL;
  /** File name ending after the template name ('.hbs', '.cu.hbs'). */
  readonly ext: string;
  /** Suffixes of literals: WGSL writes 1u / 1i / 1.0, CUDA 1u / 1 / 1.0f. */
  readonly uintSuffix: string;
  readonly intSuffix: string;
  readonly floatSuffix: string;
  /** Partials every template may include. */
  readonly partials: readonly string[];
}

export function templateEnv(o: TemplateEnvOptions): TemplateEnv {
  const hb = Handlebars.create();
  hb.registerHelper('u', (n: unknown) => uintText(n as number, o.uintSuffix));
  hb.registerHelper('i', (n: unknown) => intText(n as number, o.intSuffix));
  hb.registerHelper('f', (x: unknown) => floatText(x as number, o.floatSuffix));
  hb.registerHelper('floats', (xs: unknown) => (xs as number[]).map((x) => floatText(x, o.floatSuffix)).join(', '));
  const read = (name: string) => readFileSync(new URL(`${name}${o.ext}`, o.dir), 'utf8');
  const compile = (name: string) => hb.compile(read(name), { noEscape: true, strict: true });
  for (const p of o.partials) hb.registerPartial(p, compile(p));
  const compiled = new Map<string, HandlebarsTemplateDelegate>();
  return {
    fill(name, context) {
      let t = compiled.get(name);
      if (!t) compiled.set(name, t = compile(name));
      return t(context).replace(/\n[ \t]*\n([ \t]*\n)+/g, '\n\n');
    },
  };
}
