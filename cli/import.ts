// The CLI's GGUF pieces: `infer import FILE.gguf|HF-CHECKPOINT [-o SPEC]`, and loading a
// `weights gguf` spec's tensors for `infer run --weights FILE.gguf` with a
// progress bar on stderr (redrawn in place on a terminal; one summary line otherwise).
import { writeFileSync } from 'node:fs';
import type { ParamInfo } from '../program/model.ts';
import { basename, dirname } from 'node:path';
import { importGguf } from './importSpec.ts';
import { importHf } from './importHf.ts';
import { weightFormat } from './weights.ts';
import { GgufWeights, type GgufProgress } from '../runtime/weights/gguf.ts';
import type { Io } from './main.ts';
import { parseInteger, selfCommand } from './args.ts';

export interface ImportFlags { output?: string; 'max-context'?: string }

export function importCommand(file: string, f: ImportFlags, io: Io): number {
  const maxContext = f['max-context'] === undefined ? undefined : parseInteger('max-context', f['max-context'], 0, 1);
  const opts = { maxContext, onNote: (note: string) => io.err(`note: ${note}\n`) };
  // A Hugging Face checkpoint: its directory, index, .safetensors file or config.json.
  const checkpoint = basename(file) === 'config.json' ? dirname(file) : file;
  const spec = basename(file) === 'config.json' || weightFormat(file) === 'safetensors' ? importHf(checkpoint, opts) : importGguf(file, opts);
  if (f.output === undefined || f.output === '-') { io.out(spec); return 0; }
  writeFileSync(f.output, spec);
  io.err(`wrote ${f.output} (run it with: ${selfCommand()} run ${f.output} --weights ${checkpoint})\n`);
  return 0;
}

const MiB = (b: number): string => (b / 2 ** 20).toFixed(1);

/**
 * A progress renderer for weight loads (tensors are read as the device takes them): a bar
 * on a TTY; elsewhere (a log file, CI) a line at each quarter once the load has taken over
 * a second, then the summary line.
 */
export function progressBar(file: string, io: Io, tty: boolean): (p: GgufProgress) => void {
  const t0 = performance.now();
  let shown = -1, quarter = 0;
  return (p) => {
    const pct = p.totalBytes > 0 ? Math.floor((100 * p.bytes) / p.totalBytes) : 100;
    const done = p.index === p.count;
    if (!tty && !done && pct >= 25 * (quarter + 1) && performance.now() - t0 > 1000) {
      quarter = Math.floor(pct / 25);
      io.err(`loading ${file}: ${pct}% (${MiB(p.bytes)}/${MiB(p.totalBytes)} MiB, ${((performance.now() - t0) / 1000).toFixed(0)} s)\n`);
    }
    if (tty && (pct !== shown || done)) {
      shown = pct;
      const width = 30, fill = Math.round((width * pct) / 100);
      io.err(`\rloading ${file} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${String(pct).padStart(3)}% ${MiB(p.bytes)}/${MiB(p.totalBytes)} MiB`);
    }
    if (done) io.err(`${tty ? '\n' : ''}loaded ${p.count} tensors (${MiB(p.totalBytes)} MiB) from ${file} in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  };
}

/** Loads a spec's params from a GGUF file; `quiet` (e.g. --json) suppresses the progress output. */
export function loadGgufWeights(file: string, params: readonly ParamInfo[], io: Io, quiet: boolean): GgufWeights {
  const tty = Boolean((process.stderr as { isTTY?: boolean }).isTTY) || process.env.INFER_STDERR_TTY === '1';
  return GgufWeights.load(file, params, quiet ? {} : { onProgress: progressBar(file, io, tty) });
}
