// infer against llama.cpp on f32 and f16 GGUF files it writes itself (dense llama
// with MHA, GQA and MQA, tied and untied output, several seeds and sizes; and
// Mixtral-style MoE files, 8 experts top-2 and 16 experts top-4): every
// next-token distribution within 1e-4 in log-probability and 64 identical greedy
// tokens, on the CPU engine and the WebGPU engine. See suite.ts and cases.ts.
import { F32_CASES } from './cases.ts';
import { agreementSuite } from './suite.ts';

agreementSuite('llama.cpp agreement, f32 and f16 files', F32_CASES);
