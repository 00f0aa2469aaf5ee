#!/usr/bin/env node
// The `infer` executable. Runs the CLI from dist/infer.mjs (one bundle built by `npm run
// build`, which scripts/setup.sh runs) when it is newer than every source file, else from
// the TypeScript sources through tsx. Commands that open a WebGPU device (run without
// --backend cpu) run in a child process whose stderr passes through a filter that drops
// the two limit notices Dawn's Vulkan backend prints on every start (Dawn writes them
// from native code, so only another process can filter them); everything else runs here.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const SOURCES = ['program', 'dsl', 'compiler', 'backends', 'runtime', 'cli'];

// Mesa warns on every start without a writable XDG_RUNTIME_DIR.
if (!process.env.XDG_RUNTIME_DIR) {
  const dir = join(tmpdir(), `infer-xdg-${process.getuid?.() ?? 'user'}`);
  try { mkdirSync(dir, { recursive: true, mode: 0o700 }); process.env.XDG_RUNTIME_DIR = dir; } catch { /* warnings only */ }
}

/** The newest modification time under `dir` (files only), or 0. */
function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

function builtEntry() {
  try {
    const bundle = join(root, 'dist', 'infer.mjs');
    const stamp = statSync(bundle).mtimeMs;
    // An installed package ships the bundle without its sources: nothing can be newer.
    if (!existsSync(join(root, 'cli'))) return bundle;
    if (process.env.INFER_FROM_SOURCE !== '1' && SOURCES.every((d) => newest(join(root, d)) <= stamp)) return bundle;
  } catch { /* no build */ }
  return null;
}

const args = process.argv.slice(2);
const opensGpu = ['run', 'chat', 'serve'].includes(args[0]) && !args.some((a, i) => (a === '--backend' && args[i + 1] === 'cpu') || a === '--backend=cpu')
  && !args.includes('--help') && !args.includes('-h');
const built = builtEntry();
const entry = built ?? join(root, 'cli', 'main.ts');

if (!opensGpu || process.env.INFER_CHILD === '1') {
  if (!built) (await import('tsx/esm/api')).register();
  const { runCli } = await import(pathToFileURL(entry).href);
  await runCli(args);
} else {
  const loader = built ? [] : ['--import', import.meta.resolve('tsx')];
  const env = { ...process.env, INFER_CHILD: '1', ...(process.stderr.isTTY ? { INFER_STDERR_TTY: '1' } : {}) };
  // The child runs in a process group of its own, so a terminal's Ctrl-C reaches it exactly
  // once, forwarded from here (a second Ctrl-C then quits it at once: cli/outcome.ts). Outside
  // the terminal's foreground group it must not read the terminal itself (that would stop it
  // with SIGTTIN), so its stdin (`infer chat`'s turns) comes through this process.
  const child = spawn(process.execPath, [...loader, fileURLToPath(import.meta.url), ...args], { stdio: ['pipe', 'inherit', 'pipe'], env, detached: true });
  child.stdin.on('error', () => { /* the child exited: nothing more to send */ });
  process.stdin.pipe(child.stdin);
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
