// A bounded load test on loopback: rounds of concurrent openai clients with mixed prompt
// lengths (some sharing prefixes) and max_tokens, a fifth of them streaming and
// aborted mid-stream. Every finished completion equals its single-run greedy output,
// every aborted one is a prefix of it, none is lost or duplicated, and after each round
// the scheduler is idle with every KV page back in the pool, and memory stays flat.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODEL, serve, settled, single, type Served, type WithIds } from './serveFixture.ts';

let s: Served;
// 6 sequences at a time and a pool of 4 pages: requests also wait for KV room, not only for a batch place.
beforeAll(async () => { s = await serve({ maxBatch: 6, kvPages: 4, queue: 64 }); });
afterAll(async () => { await s.srv.close(1000); });

/** A deterministic mix: prompt lengths 1..40, a shared 12-token prefix on every third. */
function job(round: number, i: number): { prompt: number[]; max: number; abort: boolean; stream: boolean } {
  const r = (k: number) => ((round * 7919 + i * 104729 + k * 31) % 251) + 3;
  const len = 1 + ((i * 13 + round * 5) % 40);
  const body = Array.from({ length: len }, (_, k) => r(k));
  const prompt = i % 3 === 0 ? [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, ...body.slice(0, 8)] : body;
  return { prompt, max: 1 + ((i * 7 + round) % 24), abort: i % 5 === 4, stream: i % 2 === 0 || i % 5 === 4 };
}

const cancelled = (m: string) => Number(/infer_requests_finished_total\{reason="cancelled"\} (\d+)/.exec(m)?.[1] ?? 0);

describe('infer serve under load', () => {
  it('3 rounds of 64 concurrent clients: exact outputs, aborts free their pages', async () => {
    const CLIENTS = 64;
    const rss: number[] = [];
    for (let round = 0; round < 3; round++) {
      const before = cancelled(s.scheduler.metricsText());
      const results = await Promise.all(Array.from({ length: CLIENTS }, async (_, i) => {
        const j = job(round, i);
        if (!j.stream) {
          const r = await s.client.completions.create({ model: MODEL, prompt: j.prompt, max_tokens: j.max, temperature: 0 });
          return { i, ids: (r.choices[0] as unknown as WithIds).token_ids, finished: true };
        }
        // Aborted clients ask for many tokens, so they are surely mid-stream when they leave.
        const ac = new AbortController();
        const stream = await s.client.completions.create({ model: MODEL, prompt: j.prompt, max_tokens: j.abort ? 400 : j.max, temperature: 0, stream: true }, { signal: ac.signal });
        const ids: number[] = [];
        let finished = false;
        try {
          for await (const ch of stream) {
            for (const c of ch.choices) { ids.push(...(c as unknown as WithIds).token_ids); if (c.finish_reason) finished = true; }
            if (j.abort && ids.length >= 2) { ac.abort(); break; }
          }
        } catch (e) { if (!j.abort) throw e; }
        return { i, ids, finished };
      }));
      expect(results.map((r) => r.i)).toEqual(Array.from({ length: CLIENTS }, (_, i) => i));
      for (const r of results) {
        const j = job(round, r.i);
        const want = await single(j.prompt, j.abort ? 400 : j.max);
        if (j.abort && !r.finished) expect(want.slice(0, r.ids.length), `round ${round} client ${r.i}`).toEqual(r.ids);
        else expect(r.ids, `round ${round} client ${r.i}`).toEqual(want);
      }
      await settled(s);
      s.engine.kv.check();
      const m = s.scheduler.metricsText();
      expect(m).toContain('infer_kv_pages_used 0');
      expect(m).toContain('infer_requests_running 0');
      // Each aborted stream still far from its end was cancelled on the server (not run to its 400 tokens).
      const aborted = results.filter((r) => job(round, r.i).abort && !r.finished);
      let far = 0;
      for (const r of aborted) if ((await single(job(round, r.i).prompt, 400)).length >= 100) far++;
      expect(far).toBeGreaterThan(0);
      expect(cancelled(m) - before).toBeGreaterThanOrEqual(far);
      expect(cancelled(m) - before).toBeLessThanOrEqual(aborted.length);
      rss.push(process.memoryUsage().rss);
    }
    // Flat memory across rounds: the first round pays for compiled kernels, pools and caches;
    // later rounds of the same work must not keep growing (a leaked sequence, stream or
    // response would). 32 MiB leaves room for V8's heap sizing, not for 64 leaked requests a round.
    expect(rss[2] - rss[1], `RSS after each round: ${rss.map((b) => (b / 2 ** 20).toFixed(0)).join(', ')} MiB`).toBeLessThan(32 * 2 ** 20);
  }, 60_000);
});
