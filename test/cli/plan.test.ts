// `infer plan` on the command line: the JSON keys scripts rely on, the table, the SVG, and
// exit status 2 with one line for every kind of bad flag.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from './runCli.ts';

const KEYS = ['weights_bytes', 'active_weights_bytes_per_token', 'kv_bytes_per_token', 'kv_bytes_total', 'activation_bytes', 'bytes_per_step', 'flops_per_step', 'bottleneck', 'predicted_tokens_per_s'];

describe('infer plan', () => {
  it('--json carries the keys, with the KV formula consistent with its parts', async () => {
    const r = await cli('plan', 'examples/tiny-paged-int8.infer', '--context', '100', '--batch', '3', '--device', 'rtx4090', '--json');
    expect(r.code, r.err).toBe(0);
    const j = JSON.parse(r.out);
    for (const k of KEYS) expect(j, k).toHaveProperty(k);
    expect(j.kv_bytes_total).toBe(j.kv_bytes_per_token * 100 * 3);
    expect(j.kv_formula).toContain('x 100 seq x 3 batch');
    expect(j.device.name).toBe('NVIDIA GeForce RTX 4090');
    expect(j.predicted_tokens_per_s).toBeCloseTo(3 / (j.predicted_step_ms / 1000), 6);
    expect(['memory', 'compute']).toContain(j.bottleneck);
  });

  it('a table, speculative and tensor-parallel lines, and a roofline SVG', async () => {
    const svg = join(mkdtempSync(join(tmpdir(), 'infer-plan-')), 'r.svg');
    const r = await cli('plan', 'examples/draft-pair.infer', '--acceptance', '0.6', '--devices', '2', '--parallel', 'tp', '--interconnect', 'pcie4', '--svg', svg);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/KV for context x batch .* = 2 x 4 layers x 2 kv_heads x 16 head_dim x 512 seq x 1 batch x 4 bytes\/value/);
    expect(r.out).toMatch(/speculative +K=4, acceptance 0.6/);
    expect(r.out).toMatch(/draft TinyDraft/);
    expect(r.out).toMatch(/2 devices, tp .* PCIe 4.0 x16/);
    const s = readFileSync(svg, 'utf8');
    expect(s).toMatch(/^<svg/);
    expect(s).toContain('decode (');
    expect(s).toContain('prefill (');
  });

  it.each([
    [['--context', '0'], /--context needs a decimal integer in 1\.\.1024/],
    [['--context', '5000'], /--context needs a decimal integer in 1\.\.1024/],
    [['--device', 'h10'], /unknown device 'h10' \(did you mean 'h100'\?\)/],
    [['--device', 'h100', '--bandwidth', '100', '--flops', '1'], /not both/],
    [['--bandwidth', '100'], /--bandwidth and --flops go together/],
    [['--lookahead', '4'], /--lookahead needs --acceptance/],
    [['--lookahead', '4', '--acceptance', '1.5'], /--acceptance must be in 0\.\.1/],
    [['--devices', '2'], /--devices G and --parallel tp\|ep go together/],
    [['--devices', '2', '--parallel', 'ep'], /needs a mixture-of-experts model/],
    [['--devices', '2', '--parallel', 'pt'], /--parallel takes tp or ep, got 'pt'/],
    [['--batchh', '2'], /Unknown option '--batchh'.*did you mean '--batch'/],
  ])('%j: exit 2 and one message', async (flags, message) => {
    const r = await cli('plan', 'examples/llama-20m.infer', ...flags);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
    expect(r.out).toBe('');
  });
});
