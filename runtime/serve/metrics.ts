// Serving metrics in Prometheus' text format (version 0.0.4). Plain counters, gauges
// and cumulative histograms: no client library, and no node: import, so the
// scheduler that feeds them stays in the browser-safe runtime.

/** A cumulative histogram: `le` buckets in seconds, plus +Inf, sum and count. */
export class Histogram {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;

  constructor(readonly name: string, readonly help: string, readonly buckets: readonly number[]) {
    this.counts = buckets.map(() => 0);
  }

  observe(seconds: number): void {
    this.sum += seconds;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) if (seconds <= this.buckets[i]) this.counts[i]++;
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    this.buckets.forEach((b, i) => lines.push(`${this.name}_bucket{le="${b}"} ${this.counts[i]}`));
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.count}`, `${this.name}_sum ${this.sum}`, `${this.name}_count ${this.count}`);
    return lines.join('\n');
  }
}

// Latencies from a millisecond (a tiny model's decode step) to a minute (a long queue wait).
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export interface GaugeValues {
  readonly running: number;
  readonly waiting: number;
  readonly kvPagesUsed: number;
  readonly kvPagesFree: number;
  readonly batchSize: number;
}

export class ServeMetrics {
  readonly ttft = new Histogram('infer_time_to_first_token_seconds', 'Time from a request arriving to its first generated token.', LATENCY_BUCKETS);
  readonly itl = new Histogram('infer_inter_token_latency_seconds', 'Time between consecutive generated tokens of one request.', LATENCY_BUCKETS);
  generatedTokens = 0;
  promptTokens = 0;
  steps = 0;
  /** Finished requests by stop reason. */
  readonly finished = new Map<string, number>();
  rejected = 0;

  finish(reason: string): void { this.finished.set(reason, (this.finished.get(reason) ?? 0) + 1); }

  render(g: GaugeValues): string {
    const gauge = (name: string, help: string, v: number) => `# HELP ${name} ${help}\n# TYPE ${name} gauge\n${name} ${v}`;
    const counter = (name: string, help: string, v: number) => `# HELP ${name} ${help}\n# TYPE ${name} counter\n${name} ${v}`;
    const finished = ['# HELP infer_requests_finished_total Requests finished, by stop reason.', '# TYPE infer_requests_finished_total counter',
      ...[...this.finished].map(([r, n]) => `infer_requests_finished_total{reason="${r}"} ${n}`)].join('\n');
    return [
      gauge('infer_requests_running', 'Requests in the running batch.', g.running),
      gauge('infer_requests_waiting', 'Requests queued for a place in the batch.', g.waiting),
      gauge('infer_batch_size', 'Sequences in the last batched forward.', g.batchSize),
      gauge('infer_kv_pages_used', 'KV cache pages in use.', g.kvPagesUsed),
      gauge('infer_kv_pages_free', 'KV cache pages free.', g.kvPagesFree),
      counter('infer_generated_tokens_total', 'Tokens generated.', this.generatedTokens),
      counter('infer_prompt_tokens_total', 'Prompt tokens admitted.', this.promptTokens),
      counter('infer_steps_total', 'Batched forwards run.', this.steps),
      counter('infer_requests_rejected_total', 'Requests refused because the queue was full.', this.rejected),
      finished,
      this.ttft.render(),
      this.itl.render(),
    ].join('\n') + '\n';
  }
}
