// Strict number parsing and "did you mean" for the CLI. Number() alone reads '0x10' as 16,
// '1e1' as 10 and '' as 0, and a seed past the sampler's 32-bit range silently wraps to
// another seed's stream: every numeric flag goes through here so what the user typed is
// what runs, or the run stops with one line saying what was expected.
import { realpathSync } from 'node:fs';
import { delimiter, isAbsolute, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A user error in the arguments: printed as `infer: message`, exit status 1. */
export class ArgError extends Error {}

/** The sampler's seed range: its PRNG state is 32 bits, so larger seeds would alias smaller ones. */
export const MAX_SEED = 2 ** 32 - 1;

const DECIMAL_INT = /^[0-9]+$/;
const DECIMAL = /^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;

/** A decimal integer in [min, max] (no sign, hex, exponent or fraction), or `fallback` when absent. */
export function parseInteger(flag: string, text: string | undefined, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (text === undefined) return fallback;
  const v = Number(text);
  if (!DECIMAL_INT.test(text) || !Number.isSafeInteger(v) || v < min || v > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in ${min}..${max}`;
    throw new ArgError(`--${flag} needs a decimal integer ${range}, got '${text}'`);
  }
  return v;
}

/** A finite decimal number >= min (digits, '.', an optional exponent; no hex, sign or Infinity). */
export function parseDecimal(flag: string, text: string | undefined, fallback: number, min: number): number {
  if (text === undefined) return fallback;
  const v = Number(text);
  if (!DECIMAL.test(text) || !Number.isFinite(v) || v < min) throw new ArgError(`--${flag} needs a number >= ${min}, got '${text}'`);
  return v;
}

/** A comma-separated list of token ids, each a decimal integer below `vocab`. */
export function parseTokenIds(text: string, vocab: number, where: string): number[] {
  const parts = text.split(',').map((s) => s.trim());
  const bad = parts.findIndex((s) => !DECIMAL_INT.test(s) || Number(s) >= vocab);
  if (bad >= 0) throw new ArgError(`${where}: '${parts[bad]}' is not a token id in 0..${vocab - 1} (give decimal ids like 1,2,3)`);
  return parts.map(Number);
}

/** Edit distance: insert, delete, substitute, or swap two neighbours (the commonest typo); each costs 1. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/**
 * The candidate closest to `word`, when close enough to be a likely typo: at most a third
 * of the word's length (min 1, max 3) edits away, or a candidate the word is a prefix of.
 */
export function closest(word: string, candidates: readonly string[]): string | null {
  let best: string | null = null, bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestD) { best = c; bestD = d; }
  }
  if (best === null) return null;
  const limit = Math.min(3, Math.max(1, Math.floor(word.length / 3)));
  if (bestD <= limit) return best;
  const prefixed = candidates.filter((c) => word.length >= 3 && c.startsWith(word));
  return prefixed.length === 1 ? prefixed[0] : null;
}

/** ` (did you mean X?)`, or '' when nothing is close. */
export function didYouMean(word: string, candidates: readonly string[]): string {
  const c = closest(word, candidates);
  return c === null ? '' : ` (did you mean '${c}'?)`;
}

/**
 * How the user can run this CLI again, for hints: `infer` when that name on PATH is this
 * very bin, `npx infer` inside this package (npm runs the project's own bin by its bin
 * name), else `npx infer-compiler` (the npm package: `infer` on npm is another project).
 */
export function selfCommand(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const bin = join(root, 'bin', 'infer.mjs');
  for (const dir of (env.PATH ?? '').split(delimiter).filter(Boolean)) {
    try { if (realpathSync(join(dir, 'infer')) === realpathSync(bin)) return 'infer'; } catch { /* not there */ }
  }
  const rel = relative(root, cwd);
  if (!rel.startsWith('..') && !isAbsolute(rel)) return 'npx infer';
  return `npx ${PACKAGE_NAME}`;
}

/** The npm package name (package.json "name"); the command it installs is `infer`. */
export const PACKAGE_NAME = 'infer-compiler';
