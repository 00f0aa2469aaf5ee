// Setup check: node-llama-cpp's prebuilt CPU llama.cpp (used by test/agreement) loads on
// this machine without building or downloading anything. Exit 0 when it does.
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';

const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
console.log(`setup: llama.cpp ${llama.buildType} CPU build loads`);
await llama.dispose();
