#!/usr/bin/env node
// The `infer` executable. Dawn (WebGPU) crashes under V8's optimising compiler,
// so the CLI must run under `node --no-opt`; TypeScript sources load through tsx.
// When this process lacks --no-opt, re-execute node with both and pass through
// stdio, the exit status and signals; otherwise load the CLI in this process.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const cli = fileURLToPath(new URL('../cli/main.ts', import.meta.url));

// Mesa warns on every start without a writable XDG_RUNTIME_DIR.
if (!process.env.XDG_RUNTIME_DIR) {
  const dir = join(tmpdir(), `infer-xdg-${process.getuid?.() ?? 'user'}`);
  try { mkdirSync(dir, { recursive: true, mode: 0o700 }); process.env.XDG_RUNTIME_DIR = dir; } catch { /* warnings only */ }
}

const hasNoOpt = process.execArgv.includes('--no-opt') || process.execArgv.includes('--jitless');

if (hasNoOpt) {
  // Already safe for Dawn: register tsx here and run the CLI in-process.
  const { register } = await import('tsx/esm/api');
  register();
  process.argv = [process.argv[0], cli, ...process.argv.slice(2)];
  await import(pathToFileURL(cli).href);
} else {
  // tsx resolved from this package, so the command works from any directory.
  const tsx = import.meta.resolve('tsx');
  // stderr passes through a filter that drops the two limit notices Dawn's Vulkan backend
  // prints on every start (they say nothing about this run); the child is told whether
  // stderr is a terminal, so progress bars still draw in place.
  const env = { ...process.env, ...(process.stderr.isTTY ? { INFER_STDERR_TTY: '1' } : {}) };
  const child = spawn(process.execPath, ['--no-opt', '--import', tsx, cli, ...process.argv.slice(2)], { stdio: ['inherit', 'inherit', 'pipe'], env });
  filterStderr(child.stderr);
  const forward = (sig) => () => { try { child.kill(sig); } catch { /* already gone */ } };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, forward(sig));
  child.on('error', (e) => { process.stderr.write(`infer: cannot start node: ${e.message}\n`); process.exit(1); });
  // 'close', not 'exit': only then has the filtered stderr been read to its end.
  child.on('close', (code, signal) => {
    if (signal) { process.removeAllListeners(signal); process.kill(process.pid, signal); }
    else process.exit(code ?? 1);
  });
}

/** Forwards a stream to stderr without Dawn's start-up notices; partial lines (progress bars) go out at once. */
function filterStderr(stream) {
  const NOTICE = /^Warning: maxDynamic(Uniform|Storage)BuffersPerPipelineLayout artificially reduced/;
  const PREFIX = 'Warning: maxDynamic';
  let held = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    const parts = (held + chunk).split('\n');
    held = parts.pop();
    const out = parts.filter((line) => !NOTICE.test(line)).map((line) => line + '\n').join('');
    // Hold a partial line only while it could still become a notice.
    if (!(PREFIX.startsWith(held) || held.startsWith(PREFIX))) { process.stderr.write(out + held); held = ''; }
    else if (out) process.stderr.write(out);
  });
  stream.on('end', () => { if (held && !NOTICE.test(held)) process.stderr.write(held); });
}
