// node examples/web/build.mjs [SPEC] [WEIGHTS.gguf] [OUT]: the static page in OUT (default
// .tmp/web): index.html, main.js, model.js (the generated module), chunks/, model.gguf.
// Defaults: the README's text example (.tmp/example/, made by scripts/make-example-model.ts).
import { copyFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleWithModel } from '../bundleWithModel.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const [spec = '.tmp/example/llama2-text.infer', weights = '.tmp/example/llama2-text.gguf', out = '.tmp/web'] = process.argv.slice(2);
await bundleWithModel({ entry: join(here, 'main.ts'), spec, weights, out, platform: 'browser' });
copyFileSync(join(here, 'index.html'), join(out, 'index.html'));
copyFileSync(weights, join(out, 'model.gguf'));
console.error(`examples/web: built ${out} (serve it over http, e.g. npx http-server ${out}, and open index.html)`);
