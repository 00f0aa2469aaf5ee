// docs/language.md is generated from the code (scripts/languageDoc.ts): it must be what
// the generator writes now, so the reference cannot drift from the functions, config
// defaults and ops it describes. Regenerate with: npx tsx scripts/languageDoc.ts --write
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { BUILTINS } from '../../compiler/builtins.ts';
import { CONFIG_KEYS } from '../../compiler/configKeys.ts';
import { LANGUAGE_DOC, languageDoc } from '../../scripts/languageDoc.ts';

it('docs/language.md is up to date with the code', () => {
  expect(readFileSync(LANGUAGE_DOC, 'utf8')).toBe(languageDoc());
});

it('names every function, config key and IR op', () => {
  const doc = languageDoc();
  for (const name of Object.keys(BUILTINS)) expect(doc).toContain(`| \`${name}(`);
  for (const k of CONFIG_KEYS) expect(doc).toContain(`| \`${k.name}\` |`);
  for (const op of ['embed', 'rmsnorm', 'matmul', 'rope', 'slice', 'attention', 'attn_scores', 'kv_store', 'fused_matmul', 'moe_experts']) expect(doc).toContain(`| \`${op}\` |`);
  expect(doc, 'an IR op without a doc comment').not.toContain('(see compiler/ir/ops.ts)');
});
