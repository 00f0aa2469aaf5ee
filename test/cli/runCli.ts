// The CLI in-process (cli/main.ts main) with stdout and stderr captured: what every CLI test
// that does not need a real process runs through.
import { main } from '../../cli/main.ts';

export async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const code = await main(argv, { out: (t) => { out += t; }, err: (t) => { err += t; } });
  return { code, out, err };
}
