// infer against llama.cpp on bf16 and quantised (q8_0, q4_0, q4_K) GGUF files:
// exact (1e-4) where only token_embd is quantised, since llama.cpp dequantises it
// exactly too; within the stated bounds where every matrix is (cases.ts says why).
import { QUANT_CASES } from './cases.ts';
import { agreementSuite } from './suite.ts';

agreementSuite('llama.cpp agreement, bf16 and quantised files', QUANT_CASES);
