// The serving scheduler: ONE decode loop over one engine, fed by requests that arrive
// at any time. Every step is one batched forward (runtime/kv/batchStep.ts) over the
// running sequences; waiting requests join between steps (continuous batching), a
// prompt sharing a prefix with a live sequence reuses its KV pages, and each request
// samples with its own seeded Sampler, so its tokens are those it gets alone.
//
// Admission reserves KV room: a request is admitted only when the pages its prompt plus
// max_tokens can ever take fit beside what the running requests may still take, so a
// running request never loses its pages to a newcomer. Until then it waits in a bounded
// queue (over the bound, submit throws QueueFullError: the server's 429). Cancelling a
// request frees its pages at once (after the step in flight, if one is).
//
// No node: import: the HTTP layer lives in cli/serve/.
import type { Engine } from '../engine.ts';
import { KvPoolExhausted } from '../kv/sequences.ts';
import { logSoftmax, Sampler, topLogprobs as topN, type SamplingOptions, type TokenLogprob } from '../sampling.ts';
import { cancelledMessage, stopForError, yieldToEvents, type StopReason } from '../stop.ts';
import { ServeMetrics } from './metrics.ts';
import { admit, type Slot } from './admission.ts';

export class QueueFullError extends Error {}
export class ShuttingDownError extends Error {}
/** The request can never run on this engine (prompt over the context or the pool). */
export class RequestTooLargeError extends Error {}

export interface ServeRequest {
  readonly prompt: readonly number[];
  readonly maxTokens: number;
  readonly sampling: SamplingOptions;
  /** Token ids that end generation; the stop token itself is not returned (OpenAI's `stop`). */
  readonly stopTokens?: readonly number[];
  /** Alternatives per token to report (OpenAI's `logprobs`); undefined: no log-probabilities at all. */
  readonly logprobs?: number;
  readonly onToken?: (t: GeneratedToken) => void;
}

export interface GeneratedToken {
  readonly id: number;
  readonly index: number;
  /** The sampled token's log-probability (temperature 1), when logprobs were asked for. */
  readonly logprob?: number;
  readonly top: readonly TokenLogprob[];
}

/** 'stop_token': one of the request's stop tokens (or the model's eos) was sampled. */
export type FinishReason = StopReason | 'stop_token';

export interface Completion {
  readonly tokens: number[];
  readonly finish: FinishReason;
  readonly message?: string;
}

export interface Ticket {
  readonly done: Promise<Completion>;
  /** Ends the request now (a client that went away): its pages return to the pool. */
  cancel(): void;
}

export interface SchedulerOptions {
  /** Requests that may wait for a place in the batch; one more is refused. */
  readonly maxQueue: number;
  readonly now?: () => number;
}

export class Scheduler {
  readonly metrics = new ServeMetrics();
  private readonly running: Slot[] = [];
  private readonly waiting: Slot[] = [];
  private looping = false;
  private inStep = false;
  private stopping = false;
  private lastBatch = 0;
  /** Set when a newcomer was sent back for want of pages: the next step only decodes. */
  private holdAdmission = false;
  private idle: (() => void)[] = [];
  private readonly now: () => number;

  constructor(readonly engine: Engine, private readonly opts: SchedulerOptions) {
    this.now = opts.now ?? (() => performance.now());
  }

  get load(): { running: number; waiting: number } { return { running: this.running.length, waiting: this.waiting.length }; }

  /** Throws RequestTooLargeError when `prompt` (plus one token) can never be held. */
  check(prompt: readonly number[]): void {
    const m = this.engine.model, kv = this.engine.kv;
    if (prompt.length === 0) throw new RequestTooLargeError('the prompt is empty: give at least one token');
    if (prompt.length > m.maxContext) throw new RequestTooLargeError(`the prompt has ${prompt.length} tokens but the model's context holds ${m.maxContext}`);
    const pages = Math.ceil(prompt.length / kv.pageSize);
    if (pages > kv.pool.total) throw new RequestTooLargeError(`the prompt's ${prompt.length} tokens need ${pages} KV pages; the pool holds ${kv.pool.total}`);
  }

  submit(req: ServeRequest): Ticket {
    if (this.stopping) throw new ShuttingDownError('the server is shutting down');
    this.check(req.prompt);
    if (this.waiting.length >= this.opts.maxQueue) {
      this.metrics.rejected++;
      throw new QueueFullError(`too many requests waiting (${this.waiting.length} queued, the limit is ${this.opts.maxQueue}); retry later`);
    }
    let resolve!: (c: Completion) => void;
    const done = new Promise<Completion>((r) => { resolve = r; });
    const kv = this.engine.kv;
    // The most pages this request can ever hold: its whole length, capped by the context and the pool.
    const maxLen = Math.min(req.prompt.length + req.maxTokens, this.engine.model.maxContext);
    const slot: Slot = {
      req, prompt: req.prompt, seq: null, pending: [...req.prompt], out: [], sampler: new Sampler(req.sampling),
      stopSet: new Set(req.stopTokens ?? []), commit: Math.min(kv.pool.total, Math.ceil(maxLen / kv.pageSize)),
      arrived: this.now(), last: 0, finished: false, resolve,
    };
    if (req.maxTokens <= 0) { slot.finished = true; resolve({ tokens: [], finish: 'max_tokens' }); return { done, cancel: () => {} }; }
    this.waiting.push(slot);
    this.kick();
    return { done, cancel: () => this.cancel(slot) };
  }

  /** Refuses new requests, lets the admitted ones finish for up to `ms`, then cancels the rest. True when all finished. */
  async drain(ms: number): Promise<boolean> {
    this.stopping = true;
    if (!this.looping) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finished = await Promise.race([
      new Promise<boolean>((r) => this.idle.push(() => r(true))),
      new Promise<boolean>((r) => { timer = setTimeout(() => r(false), ms); }),
    ]);
    clearTimeout(timer);
    if (!finished) for (const s of [...this.waiting, ...this.running]) this.cancel(s);
    return finished;
  }

  metricsText(): string {
    const pool = this.engine.kv.pool;
    return this.metrics.render({ running: this.running.length, waiting: this.waiting.length, kvPagesUsed: pool.used, kvPagesFree: pool.free, batchSize: this.lastBatch });
  }

  private cancel(s: Slot): void {
    if (s.finished) return;
    // Mid-forward the sequence's pages are being written: free them when the step returns.
    if (s.seq !== null && this.inStep) { s.cancelRequested = true; return; }
    this.end(s, 'cancelled', cancelledMessage(s.out.length));
  }

  private kick(): void {
    if (this.looping) return;
    this.looping = true;
    void this.loop();
  }

  private async loop(): Promise<void> {
    while (this.running.length + this.waiting.length > 0) {
      this.inStep = true;
      try { await this.step(); } catch (e) {
        // Anything the step did not expect ends the sequences it held; the server keeps serving.
        const s = stopForError(e);
        for (const r of [...this.running]) this.end(r, s.stop, `stopped after ${r.out.length} tokens: ${s.message}`);
      } finally { this.inStep = false; }
      for (const r of [...this.running]) if (r.cancelRequested) this.end(r, 'cancelled', cancelledMessage(r.out.length));
      // Let HTTP traffic in between steps (the CPU engine's forward never yields by itself).
      await yieldToEvents();
    }
    this.looping = false;
    this.lastBatch = 0;
    for (const f of this.idle.splice(0)) f();
  }

  private async step(): Promise<void> {
    const { batch, feed, admitted } = admit(this.engine, this.running, this.waiting, !this.holdAdmission);
    this.holdAdmission = false;
    for (const r of admitted) {
      this.waiting.splice(this.waiting.indexOf(r), 1);
      this.running.push(r);
      this.metrics.promptTokens += r.prompt.length;
    }
    if (batch.length === 0) return;
    try {
      const items = batch.map((r) => ({ seq: r.seq!, tokens: r.pending.slice(0, feed.get(r)) }));
      const rows = await this.engine.forwardBatch(items, { rows: 'last' });
      this.metrics.steps++;
      this.lastBatch = batch.length;
      batch.forEach((r, i) => {
        r.pending = r.pending.slice(feed.get(r));
        if (r.pending.length === 0 && !r.finished && !r.cancelRequested) this.take(r, rows[i]);
      });
    } catch (e) {
      // Admission keeps the pool from running out; should it still (a bug, or a sliding window's
      // copies), the newest sequence goes back to waiting if it has no output yet, else stops.
      if (!(e instanceof KvPoolExhausted)) throw e;
      const newest = batch.at(-1)!;
      if (newest.out.length > 0 || batch.length === 1) { this.end(newest, 'kv_exhausted', `stopped after ${newest.out.length} tokens: ${e.message}`); return; }
      this.engine.kv.free(newest.seq!);
      newest.seq = null;
      newest.pending = [...newest.prompt];
      this.running.splice(this.running.indexOf(newest), 1);
      this.waiting.unshift(newest);
      this.holdAdmission = true;
    }
  }

  private take(r: Slot, row: Float32Array): void {
    const m = this.engine.model;
    const id = r.sampler.sample(row);
    const t = this.now();
    if (r.out.length === 0) this.metrics.ttft.observe((t - r.arrived) / 1000);
    else this.metrics.itl.observe((t - r.last) / 1000);
    r.last = t;
    // A stop token (or eos) ends the request and is not part of the completion, as with OpenAI's `stop`.
    if (r.stopSet.has(id) || (m.eos !== null && id === m.eos)) { this.end(r, 'stop_token'); return; }
    const n = r.req.logprobs;
    const tok: GeneratedToken = { id, index: r.out.length, ...(n !== undefined ? { logprob: logSoftmax(row)[id], top: topN(row, n) } : { top: [] }) };
    r.out.push(id);
    this.metrics.generatedTokens++;
    r.pending = [id];
    try { r.req.onToken?.(tok); } catch { /* a failing listener must not stop the loop */ }
    if (r.out.length >= r.req.maxTokens) this.end(r, 'max_tokens');
    else if (this.engine.kv.length(r.seq!) >= m.maxContext) this.end(r, 'max_context', `stopped after ${r.out.length} tokens: the context of ${m.maxContext} is full`);
  }

  private end(r: Slot, finish: FinishReason, message?: string): void {
    if (r.finished) return;
    r.finished = true;
    if (r.seq !== null) { this.engine.kv.free(r.seq); r.seq = null; }
    for (const list of [this.running, this.waiting]) { const i = list.indexOf(r); if (i >= 0) list.splice(i, 1); }
    this.metrics.finish(finish);
    r.resolve({ tokens: r.out, finish, ...(message ? { message } : {}) });
  }
}
