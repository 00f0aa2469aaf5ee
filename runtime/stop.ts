// Why a sequence stopped, shared by every generation loop (generate, BatchGenerator,
// speculativeGenerate). The loops never throw away generated tokens: a full KV pool,
// the end of the context, a cancellation or a failing forward end the sequences it
// touches with one of these reasons (and a message), and the loop returns what they
// produced. Only 'max_tokens' and 'eos' are normal ends; the CLI's exit status says
// whether every sequence ended normally (cli/outcome.ts).
import { KvPoolExhausted } from './kv/pagePool.ts';

export type StopReason =
  /** Generated the tokens asked for. */
  | 'max_tokens'
  /** Sampled the model's end-of-sequence token. */
  | 'eos'
  /** The next forward would run past the model's context. */
  | 'max_context'
  /** The KV page pool could not hold the sequence's next tokens. */
  | 'kv_exhausted'
  /** The prompt alone can never be held: longer than the context, or than the whole pool. */
  | 'prompt_too_large'
  /** The caller's AbortSignal fired (the CLI: Ctrl-C). */
  | 'cancelled'
  /** A forward failed; the message says why. */
  | 'error';

export const NORMAL_STOPS: ReadonlySet<StopReason> = new Set(['max_tokens', 'eos']);

/** What a failing forward means for the sequences it carried. */
export function stopForError(e: unknown): { stop: StopReason; message: string } {
  const message = e instanceof Error ? e.message : String(e);
  return { stop: e instanceof KvPoolExhausted ? 'kv_exhausted' : 'error', message };
}

/**
 * Lets pending events run (a SIGINT handler that aborts the signal). Engines whose
 * forward finishes without reaching the event loop (the CPU interpreter) would
 * otherwise never see a cancellation until generation ends. Only awaited when the
 * caller passed a signal; setImmediate where it exists (node), else a 0 ms timer.
 */
export function yieldToEvents(): Promise<void> {
  const g = globalThis as { setImmediate?: (f: () => void) => unknown };
  return new Promise((done) => { if (g.setImmediate) g.setImmediate(done); else setTimeout(done, 0); });
}

/** The message of a cancelled sequence. */
export function cancelledMessage(tokens: number): string {
  return `cancelled after ${tokens} token${tokens === 1 ? '' : 's'}`;
}
