// Writes the README's text example (bench/fixtures/exampleModel.ts) to .tmp/example/:
//   npx tsx scripts/make-example-model.ts [DIR]
// scripts/setup.sh runs it; the files are never committed (.tmp/ is ignored).
import { writeExampleModel } from '../bench/fixtures/exampleModel.ts';

const { gguf, spec } = writeExampleModel(process.argv[2] ?? '.tmp/example');
process.stderr.write(`wrote ${gguf} and ${spec} (random weights around the Llama 2 vocabulary: the text is gibberish)\n`);
