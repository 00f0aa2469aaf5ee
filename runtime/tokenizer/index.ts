// The tokenizer module: browser-safe (no node: imports). Build a Tokenizer from GGUF
// metadata or from a Hugging Face tokenizer.json.
export { tokenizerFromGguf } from './fromGguf.ts';
export { tokenizerFromHf } from './fromHf.ts';
export { VocabTokenizer, cleanSpaces } from './tokenizer.ts';
export type { VocabData } from './vocab.ts';
export { Attr, TokenType } from './types.ts';
export type { DecodeOptions, EncodeOptions, StreamDecoder, Tokenizer } from './types.ts';
export { ChatTemplate, ChatTemplateError, chatTemplateFor, renderChatTemplate } from './chatTemplate.ts';
export type { ChatMessage, ChatRenderOptions } from './chatTemplate.ts';
