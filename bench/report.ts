// What every benchmark driver does at its ends: write its table and data as
// bench/results/<name>.{md,json} (the markdown also to stdout), and turn a failure into
// one line on stderr and exit 1 (INFER_DEBUG=1 adds the stack).
import { mkdirSync, writeFileSync } from 'node:fs';

export function writeResults(name: string, data: unknown, md: string): void {
  mkdirSync('bench/results', { recursive: true });
  writeFileSync(`bench/results/${name}.json`, JSON.stringify(data, null, 2) + '\n');
  writeFileSync(`bench/results/${name}.md`, md.endsWith('\n') ? md : md + '\n');
  console.log(md);
}

export function runBench(name: string, main: () => Promise<void>): void {
  main().then(() => process.exit(0), (e: unknown) => {
    console.error(`bench ${name} failed: ${e instanceof Error ? e.message : String(e)}`);
    if (process.env.INFER_DEBUG) console.error(e);
    process.exit(1);
  });
}
