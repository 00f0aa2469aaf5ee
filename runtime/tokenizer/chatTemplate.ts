// Chat templates: the Jinja template a GGUF file carries (tokenizer.chat_template) or a
// Hugging Face tokenizer_config.json's chat_template, rendered with @huggingface/jinja
// (the implementation transformers.js uses, so templates written for Python's Jinja
// render the same). Browser-safe: the package has no node: imports, and nothing here does.
import { Template } from '@huggingface/jinja';
import type { Tokenizer } from './types.ts';

export interface ChatMessage {
  readonly role: 'system' | 'user' | 'assistant' | string;
  readonly content: string;
}

export interface ChatRenderOptions {
  /** End with the assistant turn's header so the model writes the reply. Default true. */
  readonly addGenerationPrompt?: boolean;
  readonly bosToken?: string;
  readonly eosToken?: string;
  /** Names the template in errors (a file name, "tokenizer.chat_template of F.gguf"). */
  readonly source?: string;
}

export class ChatTemplateError extends Error {}

/** A parsed template; parse once, render per turn (parsing a long template costs more than rendering it). */
export class ChatTemplate {
  private readonly template: Template;

  constructor(readonly text: string, private readonly source = 'the chat template') {
    try {
      this.template = new Template(text);
    } catch (e) {
      throw new ChatTemplateError(`${source} does not parse as Jinja: ${(e as Error).message}`);
    }
  }

  render(messages: readonly ChatMessage[], o: ChatRenderOptions = {}): string {
    try {
      return this.template.render({
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        add_generation_prompt: o.addGenerationPrompt ?? true,
        bos_token: o.bosToken ?? '',
        eos_token: o.eosToken ?? '',
      });
    } catch (e) {
      // raise_exception('Conversation roles must alternate ...') and runtime type errors land here.
      throw new ChatTemplateError(`${o.source ?? this.source} failed to render: ${(e as Error).message}`);
    }
  }
}

/** One-shot render (parses the template each call). */
export function renderChatTemplate(template: string, messages: readonly ChatMessage[], o: ChatRenderOptions = {}): string {
  return new ChatTemplate(template, o.source).render(messages, o);
}

/**
 * The template a tokenizer carries, with its bos/eos texts filled in from the vocabulary;
 * undefined when the file carries none.
 */
export function chatTemplateFor(tok: Tokenizer, source: string): { template: ChatTemplate; bosToken: string; eosToken: string } | undefined {
  if (tok.chatTemplate === undefined) return undefined;
  const text = (id: number | undefined) => (id === undefined ? '' : tok.tokenText(id));
  return { template: new ChatTemplate(tok.chatTemplate, source), bosToken: text(tok.bos), eosToken: text(tok.eos) };
}
