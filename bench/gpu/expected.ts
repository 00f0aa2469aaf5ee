// Expected tokens for bench/gpu/run.py, from `infer run --backend cpu --json` (the float64
// interpreter): each case's tokens per sequence and, for greedy cases (run with
// --top-logprobs 2), each step's runner-up token and its logprob gap to the chosen one, so
// run.py can tell a near tie that f32 arithmetic on the GPU may resolve the other way (after
// which a sequence legitimately diverges) from a wrong token. The 1B model's expected tokens
// take the CPU engine minutes, so they are committed (bench/gpu/expected-1b.json) with the
// SHA-256 of the spec they came from; makeBundle.ts refuses a stale file.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

export interface Case { readonly name: string; readonly args: readonly string[] }

export interface ExpectedCase extends Case {
  /** Tokens per sequence (one prompt: one sequence). */
  readonly tokens: number[][];
  /** Greedy cases: per sequence, per step, [runner-up id, logprob(chosen) - logprob(runner-up)]. */
  readonly runner_up?: [number, number][][];
}

export interface Expected1B { readonly spec: string; readonly spec_sha256: string; readonly engine: string; readonly cases: ExpectedCase[] }

export const EXPECTED_1B = 'bench/gpu/expected-1b.json';

/** Greedy cases get --top-logprobs 2 (the runner-up of every step); sampled ones are compared exactly. */
export const isGreedy = (c: Case): boolean => !c.args.includes('--temperature');

/** The CPU engine's arguments for a case. */
export const cpuArgs = (spec: string, c: Case): string[] => ['run', spec, '--backend', 'cpu', '--json', '--no-speculative', ...c.args, ...(isGreedy(c) ? ['--top-logprobs', '2'] : [])];

interface RunJson { tokens?: number[]; top_logprobs?: { id: number; logprob: number }[][]; sequences?: { tokens: number[]; top_logprobs?: { id: number; logprob: number }[][] }[] }

/** A case's expected entry from the CPU engine's --json output. */
export function expectedCase(c: Case, json: string): ExpectedCase {
  const r = JSON.parse(json) as RunJson;
  const seqs = r.sequences ?? [{ tokens: r.tokens!, top_logprobs: r.top_logprobs }];
  const tokens = seqs.map((s) => s.tokens);
  if (!isGreedy(c)) return { ...c, tokens };
  const runnerUp = seqs.map((s) => s.tokens.map((id, i): [number, number] => {
    const top = s.top_logprobs?.[i];
    if (!top || top.length < 2 || top[0].id !== id) throw new Error(`case ${c.name}: step ${i} has no runner-up in the CPU engine's top_logprobs`);
    return [top[1].id, top[0].logprob - top[1].logprob];
  }));
  return { ...c, tokens, runner_up: runnerUp };
}

export const specSha256 = (spec: string): string => createHash('sha256').update(readFileSync(spec)).digest('hex');
