// The fixed corpus every vocabulary is compared on, and fast-check arbitraries for
// random text. The pieces arbitrary glues together fragments that stress the
// pre-tokenizers and special-token splitting; the code point one reaches everything else.
import fc from 'fast-check';

export const CORPUS: readonly string[] = [
  '', ' ', 'Hello world', ' Hello  world', 'Hello, world! How are you?', 'The quick brown fox jumps over the lazy dog.',
  "I'm sure it's fine, isn't it? WE'LL SEE, THEY'RE HERE, I'D, YOU'VE", "rock 'n' roll ' quoted ' 's 'm 'll",
  'def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n',
  'for (let i = 0; i < 10; i++) { console.log(`i=${i}`); }\r\n', '#include <stdio.h>\nint main(void){return 0;}',
  '    four spaces', '\t\ttabs\tand\ttabs', '\n\n\nthree newlines', 'trailing spaces   ', 'mixed \t \n \r\n  \n end',
  '   ', '\n', '\r\n', ' \n ', 'a  b   c    d     e',
  '1', '12', '123', '1234', '12345678901234567890', '3.14159 2,718 1e-9 0x1F', 'year 2024, 10,000 people',
  '日本語のテキストです。', '中文文本，包含标点。', '한국어 텍스트', 'Ελληνικά κείμενα', 'Русский текст', 'עברית ערבית العربية',
  'हिन्दी पाठ', 'ไทย ภาษา', '😀', '👨‍👩‍👧‍👦 family', '🏳️‍🌈 flag', '👍🏽 thumbs', 'emoji🎉in🎊text', '🇺🇸🇯🇵',
  'e\u0301 n\u0303 a\u030a', 'Z\u0351\u0362a\u0336l\u0335g\u0337o', 'cafe\u0301 vs café', '\u00a0nbsp\u3000ideographic\u2003em',
  '\u0085next line\u2028line sep', 'zero\u200bwidth\u200djoiner', '\ufeffBOM', '\u{10FFFD} private \uE000',
  '\u0378 unassigned \u{E01EF}', ' \u0378x', 'x \u0378', '<s>', '</s>', '<unk>', '<s>hello</s>', ' <s> spaced </s> ',
  '<|begin_of_text|>Hi<|eot_id|>', '<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>',
  '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n', '<think>\nhmm\n</think>answer', '<tool_call>{"a":1}</tool_call>',
  '<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>', '<|endoftext|><|endoftext|>', '<|not_a_token|> <|eot_id', 'a<|eot_id|>b',
  'URL: https://example.com/path?q=1&r=2#frag', 'email: someone@example.org', 'C:\\Users\\name\\file.txt',
  '!!!???...,,,', '---===+++***', '«quotes» “curly” ‘single’', '$100 €200 ¥300 £400', '½ ¼ ² ³ ⅓ Ⅻ',
];

const PIECES = [' ', '  ', '\n', '\t', '\r\n', 'the', 'The', ' word', "'s", "'LL", '123', '4567', '3.14', '日本', '😀', '👨‍👩‍👧',
  'e\u0301', '\u00a0', '\u0378', '<s>', '</s>', '<|eot_id|>', '<|im_end|>', '<think>', '<|begin_of_text|>', '!', '...', 'é', 'ß', '\u200d', '▁'];

/** Random text: glued fragments (pre-tokenizer corners) or arbitrary code points. */
export const textArb: fc.Arbitrary<string> = fc.oneof(
  fc.array(fc.constantFrom(...PIECES), { maxLength: 12 }).map((a) => a.join('')),
  fc.string({ unit: 'binary', maxLength: 24 }),
  fc.string({ unit: 'grapheme', maxLength: 16 }),
  fc.string({ unit: fc.constantFrom(...' \n\t aé1!日😀\u0301'.split('')), maxLength: 20 }),
);

export const SEED = 42;
