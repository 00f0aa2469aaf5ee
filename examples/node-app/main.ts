// The node example: a generated model module (bundled beside this file as model.mjs) on
// WebGPU in node: Dawn's device (lavapipe on a machine without a GPU), weights from a file
// path, tokens (or text, when the weights carry a tokenizer) printed as they are sampled.
//
//   node .tmp/node-app/main.mjs WEIGHTS [PROMPT] [MAX_TOKENS]
//
// PROMPT is text when the weights carry a tokenizer, else comma-separated token ids.
import type { CreateModelOptions, InferModel, WeightsInput } from 'infer-compiler/runtime';
import { nodeDevice, weightsFromPath } from 'infer-compiler/runtime/node';

interface ModelModule {
  readonly config: { readonly name: string };
  createModel(device: GPUDevice, weights: WeightsInput, options?: CreateModelOptions): Promise<InferModel<unknown>>;
}

const [weights, prompt = '1', max = '32'] = process.argv.slice(2);
if (!weights) {
  process.stderr.write('usage: node main.mjs WEIGHTS [PROMPT] [MAX_TOKENS]\n');
  process.exit(2);
}
const { config, createModel } = await import(new URL('./model.mjs', import.meta.url).href) as ModelModule;
const device = await nodeDevice();
const model = await createModel(device, weightsFromPath(weights), {
  onProgress: (p) => process.stderr.write(`\rloading ${config.name}: ${(p.loadedBytes / 2 ** 20).toFixed(1)} MiB`),
});
process.stderr.write('\n');
const input = model.tokenizer ? prompt : prompt.split(',').map(Number);
const it = model.generate(input, { maxTokens: Number(max) });
for (let r = await it.next(); ; r = await it.next()) {
  if (r.done) {
    const s = r.value;
    process.stderr.write(`\n${s.tokens.length} tokens (${s.stop}), ${((s.tokens.length - 1) / (s.decodeMs / 1000)).toFixed(1)} tokens/s decoding\n`);
    break;
  }
  process.stdout.write(r.value.text ?? `${r.value.id} `);
}
model.dispose();
device.destroy();
