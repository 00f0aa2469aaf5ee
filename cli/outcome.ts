// How `infer run` reports what generation produced, whatever stopped it: the tokens of
// every sequence (stdout), one line per sequence that ended early (stderr), a one-line
// summary (or the whole stats table under --verbose), exactly one JSON object under
// --json, and an exit status that says whether every sequence ended normally:
//   0    every sequence ended by max_tokens or eos
//   1    a forward failed (stop 'error'), or any other error
//   3    some sequence was cut short: kv_exhausted, max_context or prompt_too_large
//   130  interrupted (Ctrl-C; stop 'cancelled'), as shells report SIGINT
import type { ParamInfo } from '../program/model.ts';
import { NORMAL_STOPS, type StopReason } from '../runtime/stop.ts';
import type { TokenLogprob } from '../runtime/sampling.ts';
import type { Io } from './main.ts';

export const EXIT_OK = 0, EXIT_ERROR = 1, EXIT_INCOMPLETE = 3, EXIT_INTERRUPTED = 130;

export interface SeqOutcome {
  readonly tokens: readonly number[];
  readonly topLogprobs: readonly TokenLogprob[][];
  readonly stop: StopReason;
  /** Why it ended early, in words. */
  readonly message?: string;
}

export function exitStatus(stops: readonly StopReason[]): number {
  if (stops.includes('cancelled')) return EXIT_INTERRUPTED;
  if (stops.includes('error')) return EXIT_ERROR;
  return stops.every((s) => NORMAL_STOPS.has(s)) ? EXIT_OK : EXIT_INCOMPLETE;
}

/**
 * Cancels generation on the first Ctrl-C (the run prints what it has and exits 130) and
 * exits at once on the second. `dispose` removes the handler (main() also runs in-process).
 */
/** SIGINTs closer than this to the first are one Ctrl-C delivered twice (group and parent). */
const DUPLICATE_MS = 250;

export function interruptOnSigint(io: Io): { signal: AbortSignal; dispose(): void } {
  const ac = new AbortController();
  let first = 0;
  const handler = (): void => {
    // A terminal's Ctrl-C reaches the whole foreground group: under bin/infer.mjs's WebGPU
    // child this process gets it directly and again forwarded by its parent, milliseconds
    // apart. A person's second Ctrl-C comes later: only that one quits at once.
    if (ac.signal.aborted) { if (performance.now() - first > DUPLICATE_MS) process.exit(EXIT_INTERRUPTED); return; }
    first = performance.now();
    io.err('\ninfer: interrupted: stopping after this step (Ctrl-C again to quit at once)\n');
    ac.abort();
  };
  process.on('SIGINT', handler);
  return { signal: ac.signal, dispose: () => { process.off('SIGINT', handler); } };
}

/** "21.1M parameters in 57 tensors". */
export function paramSummary(params: readonly ParamInfo[]): string {
  const n = params.reduce((a, p) => a + p.shape.reduce((x, d) => x * d, 1), 0);
  const scaled = n >= 1e9 ? `${(n / 1e9).toFixed(1)}B` : n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}K` : String(n);
  return `${scaled} parameters in ${params.length} tensor${params.length === 1 ? '' : 's'}`;
}

export interface Report {
  readonly sequences: readonly SeqOutcome[];
  /** Everything measured: printed whole under --json and --verbose. */
  readonly stats: Record<string, unknown>;
  /** Extra tables for --verbose (MoE routing, speculative counters). */
  readonly tables?: string;
  /** One prompt was given: the single-sequence output shapes. */
  readonly single: boolean;
  /** The single sequence's tokens already went to stdout as they came. */
  readonly streamed?: boolean;
}

export interface ReportFlags {
  readonly json?: boolean; readonly verbose?: boolean; readonly topLogprobs: number;
  /** The prompts were text: --json adds each sequence's `text`, and plain output prints text instead of ids. */
  readonly text?: (ids: readonly number[]) => string;
}

/** Prints the outcome; returns the exit status. */
export function printReport(r: Report, f: ReportFlags, io: Io): number {
  const { sequences: seqs, stats } = r;
  seqs.forEach((q, i) => {
    if (!NORMAL_STOPS.has(q.stop)) io.err(`infer: ${r.single ? '' : `[${i}] `}${q.stop}: ${q.message ?? q.stop}\n`);
  });
  if (f.json) {
    const one = (q: SeqOutcome) => ({ tokens: q.tokens, ...(f.text ? { text: f.text(q.tokens) } : {}), top_logprobs: q.topLogprobs, stop_reason: q.stop, ...(q.message ? { message: q.message } : {}) });
    const body = r.single
      ? { ...one(seqs[0]), stats: { ...stats, stop_reason: seqs[0].stop }, ...(seqs[0].message ? { notice: seqs[0].message } : {}) }
      : { sequences: seqs.map(one), stats };
    io.out(JSON.stringify(body) + '\n');
  } else {
    seqs.forEach((q, i) => {
      if (!(r.single && r.streamed)) io.out(`${r.single ? '' : `[${i}] `}${f.text ? f.text(q.tokens) : q.tokens.join(' ')}\n`);
      if (f.topLogprobs > 0) io.out(logprobTable(q.tokens, q.topLogprobs));
    });
    if (f.verbose) io.err(statsTable(flatten(stats)) + (r.tables ?? ''));
    else io.err(summary(seqs, stats) + '\n');
  }
  return exitStatus(seqs.map((q) => q.stop));
}

/** One line: tokens, time, speed and how the sequences stopped. */
function summary(seqs: readonly SeqOutcome[], s: Record<string, unknown>): string {
  const n = (k: string): number => (typeof s[k] === 'number' ? (s[k] as number) : 0);
  const tokens = seqs.reduce((a, q) => a + q.tokens.length, 0);
  const ms = 'wall_ms' in s ? n('wall_ms') : n('prefill_ms') + n('decode_ms');
  const counts = new Map<StopReason, number>();
  for (const q of seqs) counts.set(q.stop, (counts.get(q.stop) ?? 0) + 1);
  const stops = [...counts].map(([k, c]) => (seqs.length === 1 ? k : `${c} ${k}`)).join(', ');
  const who = seqs.length === 1 ? '' : `${seqs.length} sequences, `;
  const spec = s.spec as { acceptance_rate?: number } | undefined;
  const accept = spec && typeof spec.acceptance_rate === 'number' ? `, ${(100 * spec.acceptance_rate).toFixed(0)}% of drafts accepted` : '';
  return `${who}${tokens} token${tokens === 1 ? '' : 's'} in ${(ms / 1000).toFixed(2)} s (${n('tokens_per_s').toFixed(1)} tok/s${accept}); stop: ${stops} (--verbose for all stats)`;
}

/** Nested stats (kv: {...}) as kv.page_size rows for the table; MoE and spec go in their own tables. */
function flatten(o: Record<string, unknown>, prefix = ''): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined || (prefix === '' && (k === 'moe' || k === 'spec'))) continue;
    if (v !== null && typeof v === 'object') Object.assign(out, flatten(v as Record<string, unknown>, `${prefix}${k}.`));
    else out[prefix + k] = v as number | string;
  }
  return out;
}

export function logprobTable(tokens: readonly number[], logprobs: readonly TokenLogprob[][]): string {
  return tokens.map((id, i) => `#${i} ${id}: ` + logprobs[i].map((t) => `${t.id}(${t.logprob.toFixed(4)})`).join(' ')).join('\n') + (tokens.length ? '\n' : '');
}

export function statsTable(s: Record<string, number | string>): string {
  const rows = Object.entries(s).map(([k, v]) => [k, typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : v]);
  const w = Math.max(0, ...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n') + '\n';
}
