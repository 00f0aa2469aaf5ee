// node examples/node-app/build.mjs [SPEC] [WEIGHTS] [OUT]: bundles main.ts and the spec's
// generated module into OUT (default .tmp/node-app): main.mjs, model.mjs, chunks/.
// Defaults: the README's text example (.tmp/example/, made by scripts/make-example-model.ts).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleWithModel } from '../bundleWithModel.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const [spec = '.tmp/example/llama2-text.infer', weights = '.tmp/example/llama2-text.gguf', out = '.tmp/node-app'] = process.argv.slice(2);
await bundleWithModel({ entry: join(here, 'main.ts'), spec, weights, out, platform: 'node' });
console.error(`examples/node-app: built ${out}; run: node ${join(out, 'main.mjs')} ${weights} "Once upon a time" 32`);
