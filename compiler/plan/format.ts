// The plan for people: a table of what it needs and how fast it should go, and a
// roofline chart (SVG) placing the decode step and prefill against the device's two
// limits. Text only from numbers and the model's own name (escaped for SVG).
import type { Plan } from './plan.ts';

const KiB = 1024, MiB = KiB * 1024, GiB = MiB * 1024;

export function bytes(n: number): string {
  if (n >= GiB) return `${(n / GiB).toFixed(2)} GiB`;
  if (n >= MiB) return `${(n / MiB).toFixed(2)} MiB`;
  if (n >= KiB) return `${(n / KiB).toFixed(1)} KiB`;
  return `${Math.round(n)} B`;
}

const flops = (n: number): string => (n >= 1e12 ? `${(n / 1e12).toFixed(2)} TFLOP` : n >= 1e9 ? `${(n / 1e9).toFixed(2)} GFLOP` : `${(n / 1e6).toFixed(2)} MFLOP`);
const rate = (n: number): string => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));

export function planTable(p: Plan): string {
  const rows: [string, string][] = [
    ['device', `${p.device.name}: ${p.device.bandwidth_gb_s} GB/s, ${p.device.tflops} TFLOP/s (${p.device.source})`],
    ['shape', `context ${p.context}, batch ${p.batch}, ${p.tokens_per_forward} tokens per forward`],
    ['weights', bytes(p.weights_bytes)],
    ['weights read per token', bytes(p.active_weights_bytes_per_token)],
    ['KV per token', bytes(p.kv_bytes_per_token)],
    ['KV for context x batch', `${bytes(p.kv_bytes_total)} = ${p.kv_formula}`],
    ['KV pool allocated', `${bytes(p.kv_pool.bytes)} (${p.kv_pool.pages} page${p.kv_pool.pages === 1 ? '' : 's'} of ${p.kv_pool.page_size} tokens)`],
    ...p.kv_savings.map((s, i): [string, string] => [i === 0 ? 'KV baseline' : '  then', `${s.step}: ${bytes(s.bytes)}${i === 0 ? '' : s.saved >= 0 ? ` (saves ${bytes(s.saved)})` : ` (costs ${bytes(-s.saved)})`}`]),
    ['activations (liveness plan)', bytes(p.activation_bytes)],
    ['device memory', `${bytes(p.device_bytes)} (${Object.entries(p.device_breakdown).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${bytes(v)}`).join(', ')})`],
    ['decode step: read / FLOPs', `${bytes(p.bytes_per_step)} / ${flops(p.flops_per_step)} in ${p.dispatches_per_step} dispatches`],
    ['decode intensity', `${p.arithmetic_intensity.toFixed(2)} FLOP/byte (ridge ${p.ridge_flops_per_byte.toFixed(1)}): ${p.bottleneck}-bound`],
    ['decode predicted', `${p.predicted_step_ms.toFixed(3)} ms/step, ${rate(p.predicted_tokens_per_s)} tokens/s`],
    ['prefill per token: read / FLOPs', `${bytes(p.prefill.bytes_per_token)} / ${flops(p.prefill.flops_per_token)} (${p.prefill.tokens} tokens in ${p.prefill.forwards} forwards)`],
    ['prefill intensity', `${p.prefill.arithmetic_intensity.toFixed(2)} FLOP/byte: ${p.prefill.bottleneck}-bound`],
    ['prefill predicted', `${rate(p.prefill.predicted_tokens_per_s)} tokens/s`],
  ];
  const s = p.speculative;
  if (s) {
    rows.push(['speculative', `K=${s.lookahead}, acceptance ${s.acceptance}: (1 - a^(K+1)) / (1 - a) = ${s.expectedTokensPerPass.toFixed(3)} tokens per pass`]);
    rows.push(['  draft / pass', `${s.draft}: ${(s.draftStepSeconds * 1e3).toFixed(3)} ms per draft step; verify ${(s.verifySeconds * 1e3).toFixed(3)} ms; pass ${(s.passSeconds * 1e3).toFixed(3)} ms`]);
    rows.push(['  predicted', `${rate(s.tokensPerS)} tokens/s, ${s.speedup.toFixed(2)}x plain decode`]);
  }
  const q = p.parallel;
  if (q) {
    rows.push([`${q.devices} devices, ${q.mode}`, `${q.collectivesPerStep} ${q.mode === 'tp' ? 'all-reduces' : 'all-to-all exchanges'} per step, ${bytes(q.commBytesPerToken)} sent per device per token over ${q.interconnect}`]);
    rows.push(['  predicted', `compute ${(q.computeSeconds * 1e3).toFixed(3)} ms + transfer ${(q.commSeconds * 1e3).toFixed(3)} ms = ${(q.stepSeconds * 1e3).toFixed(3)} ms/step, ${rate(q.tokensPerS)} tokens/s (${q.speedup.toFixed(2)}x one device)`]);
  }
  const w = Math.max(...rows.map((r) => r[0].length));
  return [`plan for ${p.model}`, ...rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`)].join('\n') + '\n';
}

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** A log-log roofline: attainable FLOP/s against intensity, with the decode step and prefill placed. */
export function rooflineSvg(p: Plan): string {
  const W = 640, H = 400, L = 70, R = 20, T = 40, B = 50;
  const bw = p.device.bandwidth_gb_s * 1e9, peak = p.device.tflops * 1e12;
  const points = [
    { label: 'decode', x: p.arithmetic_intensity, y: p.flops_per_step / (p.predicted_step_ms / 1e3) },
    { label: 'prefill', x: p.prefill.arithmetic_intensity, y: p.prefill.flops_per_token * p.prefill.predicted_tokens_per_s },
  ].filter((q) => q.x > 0 && q.y > 0);
  const xs = [p.ridge_flops_per_byte, ...points.map((q) => q.x)];
  const x0 = 10 ** Math.floor(Math.log10(Math.min(...xs)) - 0.5), x1 = 10 ** Math.ceil(Math.log10(Math.max(...xs)) + 0.5);
  const y1 = 10 ** Math.ceil(Math.log10(peak) + 0.2), y0 = 10 ** Math.floor(Math.log10(Math.min(bw * x0, ...points.map((q) => q.y))));
  const px = (x: number) => L + ((Math.log10(x) - Math.log10(x0)) / (Math.log10(x1) - Math.log10(x0))) * (W - L - R);
  const py = (y: number) => H - B - ((Math.log10(y) - Math.log10(y0)) / (Math.log10(y1) - Math.log10(y0))) * (H - T - B);
  const roof = [x0, p.ridge_flops_per_byte, x1].map((x) => `${px(x).toFixed(1)},${py(Math.min(peak, bw * x)).toFixed(1)}`).join(' ');
  const ticks: string[] = [];
  for (let e = Math.log10(x0); e <= Math.log10(x1) + 1e-9; e++) ticks.push(`<text x="${px(10 ** e).toFixed(1)}" y="${H - B + 16}" text-anchor="middle">1e${e}</text>`);
  for (let e = Math.log10(y0); e <= Math.log10(y1) + 1e-9; e++) ticks.push(`<text x="${L - 6}" y="${(py(10 ** e) + 4).toFixed(1)}" text-anchor="end">1e${e}</text>`);
  const dots = points.map((q) => `<circle cx="${px(q.x).toFixed(1)}" cy="${py(q.y).toFixed(1)}" r="5" fill="${q.label === 'decode' ? '#d62728' : '#1f77b4'}"/><text x="${(px(q.x) + 8).toFixed(1)}" y="${(py(q.y) - 6).toFixed(1)}">${q.label} (${q.x.toFixed(1)} FLOP/B)</text>`);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(`${p.model} on ${p.device.name}: roofline (context ${p.context}, batch ${p.batch})`)}</text>`,
    `<polyline points="${roof}" fill="none" stroke="#333" stroke-width="2"/>`,
    `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#999"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#999"/>`,
    ...ticks, ...dots,
    `<text x="${W / 2}" y="${H - 12}" text-anchor="middle">arithmetic intensity (FLOP per byte read)</text>`,
    `<text x="16" y="${H / 2}" text-anchor="middle" transform="rotate(-90 16 ${H / 2})">attainable FLOP/s</text>`,
    '</svg>', '',
  ].join('\n');
}
