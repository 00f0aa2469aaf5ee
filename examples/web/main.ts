// The web example: load a generated model module and its weights, then stream tokens (or
// text, when the weights carry a tokenizer) into the page as they are sampled.
//
//   index.html?weights=model.gguf                      the interactive page
//   ...&autorun=1&tokens=1,2,3&max=16[&rounds=N]       generate (N times, default once) at load and
//                                                      write the result as JSON into <pre id="result">
//                                                      (the browser test and the benchmark read it)
import { requestInferDevice, type CreateModelOptions, type InferModel, type WeightsInput } from 'infer-compiler/runtime';

/** What every generated module exports that this page uses. */
interface ModelModule {
  readonly config: { readonly name: string; readonly vocab: number };
  createModel(device: GPUDevice, weights: WeightsInput, options?: CreateModelOptions): Promise<InferModel<unknown>>;
}

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);
const status = (s: string): void => { $('status').textContent = s; };

/** performance.now() when each loading stage ended (for the benchmark's breakdown). */
const marks: Record<string, number> = {};

async function load(): Promise<{ model: InferModel<unknown>; name: string; adapter: GPUAdapterInfo | undefined; loadMs: number }> {
  if (!navigator.gpu) throw new Error('this browser has no WebGPU (navigator.gpu is missing)');
  const device = await requestInferDevice(navigator.gpu);
  marks.deviceMs = performance.now();
  const mod = await import(new URL('./model.js', import.meta.url).href) as ModelModule;
  status(`loading ${mod.config.name}…`);
  const weights = params.get('weights') ?? 'model.gguf';
  const model = await mod.createModel(device, new URL(weights, location.href), {
    onProgress: (p) => {
      const bar = $<HTMLProgressElement>('progress');
      bar.max = p.totalBytes ?? p.loadedBytes;
      bar.value = p.loadedBytes;
      if (p.loadedBytes === p.totalBytes) marks.weightsMs = performance.now();
    },
  });
  return { model, name: mod.config.name, adapter: (device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo, loadMs: performance.now() };
}

/** Generates into the page; returns the tokens and timings. */
async function generate(model: InferModel<unknown>, prompt: string | number[], maxTokens: number) {
  const out = $('output');
  out.textContent = '';
  const ids: number[] = [];
  const t0 = performance.now();
  let firstTokenMs = 0;
  const it = model.generate(prompt, { maxTokens, ignoreEos: params.has('ignore-eos') });
  for (let r = await it.next(); ; r = await it.next()) {
    if (r.done) {
      const decodeTokens = Math.max(0, ids.length - 1);
      return { tokens: ids, text: r.value.text, stop: r.value.stop, firstTokenMs, generateMs: performance.now() - t0, decodeTokensPerS: decodeTokens / (r.value.decodeMs / 1000) };
    }
    if (ids.length === 0) firstTokenMs = performance.now();
    ids.push(r.value.id);
    out.textContent += r.value.text ?? `${r.value.id} `;
    $('stats').textContent = `${ids.length} tokens`;
  }
}

async function start(): Promise<void> {
  const { model, name, adapter, loadMs } = await load();
  status(`${name} loaded on ${adapter?.architecture || adapter?.vendor || 'WebGPU'}${model.tokenizer ? '' : ' (no tokenizer: prompts are token ids)'}`);
  if (params.get('autorun') === '1') {
    const tokens = (params.get('tokens') ?? '1').split(',').map(Number);
    const r = await generate(model, tokens, Number(params.get('max') ?? 16));
    // Later rounds run warm (pipelines compiled, the JIT done): what a benchmark compares.
    const rounds = [r];
    for (let i = 1; i < Number(params.get('rounds') ?? 1); i++) rounds.push(await generate(model, tokens, Number(params.get('max') ?? 16)));
    const result = { ...r, rounds: rounds.map((x) => ({ tokens: x.tokens.length, decodeTokensPerS: x.decodeTokensPerS })), model: name, loadMs, marks, adapter: { architecture: adapter?.architecture, vendor: adapter?.vendor } };
    const pre = document.createElement('pre');
    pre.id = 'result';
    pre.textContent = JSON.stringify(result);
    document.body.append(pre);
    return;
  }
  const go = $<HTMLButtonElement>('go');
  go.disabled = false;
  $('form').addEventListener('submit', (e) => {
    e.preventDefault();
    go.disabled = true;
    const text = $<HTMLInputElement>('prompt').value;
    const prompt = model.tokenizer ? text : text.split(/[\s,]+/).filter(Boolean).map(Number);
    generate(model, prompt, Number($<HTMLInputElement>('max').value))
      .then((r) => { $('stats').textContent = `${r.tokens.length} tokens, ${r.decodeTokensPerS.toFixed(1)} tokens/s, stop: ${r.stop}`; })
      .catch(fail)
      .finally(() => { go.disabled = false; });
  });
}

function fail(e: unknown): void {
  status(`error: ${e instanceof Error ? e.message : String(e)}`);
  const pre = document.createElement('pre');
  pre.id = 'error';
  pre.textContent = e instanceof Error ? `${e.message}\n${e.stack ?? ''}` : String(e);
  document.body.append(pre);
}

start().catch(fail);
