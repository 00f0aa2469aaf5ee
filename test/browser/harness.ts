// Runs the web example (examples/web) in Debian's Chromium, headless, with WebGPU on its
// SwiftShader adapter: serves a built page on loopback, opens it with autorun, and returns
// the JSON the page writes into <pre id="result">. Used by the browser test and bench/browser.ts.
// Nothing here falls back: no browser, no adapter or a page error is a thrown error.
import { createReadStream, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_FLAGS = ['--enable-unsafe-webgpu', '--no-sandbox'];

const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.gguf': 'application/octet-stream', '.json': 'application/json' };

/** A static server for `dir` on 127.0.0.1 (a free port); paths outside `dir` are 404. */
export async function serveDir(dir: string): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const path = normalize(join(dir, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)));
    const st = path.startsWith(dir + sep) ? statSync(path, { throwIfNoEntry: false }) : undefined;
    if (!st?.isFile()) { res.writeHead(404).end('not found'); return; }
    res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream', 'content-length': st.size });
    createReadStream(path).pipe(res);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/`, close: () => new Promise((done) => server.close(() => done())) };
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
}

export interface PageResult {
  readonly tokens: number[];
  readonly text?: string;
  readonly stop: string;
  readonly model: string;
  /** performance.now() at these points (0 = navigation start). */
  readonly loadMs: number;
  readonly firstTokenMs: number;
  readonly generateMs: number;
  readonly decodeTokensPerS: number;
  /** Every round (the first is the cold one above): tokens and decode tokens/s. */
  readonly rounds: { readonly tokens: number; readonly decodeTokensPerS: number }[];
  readonly adapter: { readonly architecture?: string; readonly vendor?: string };
  /** What the page's adapter offers (read by the harness before the model loads). */
  readonly features: string[];
}

/** Opens `url` (with autorun) and waits for the page's result or error; `timeoutMs` bounds the wait. */
export async function runPage(browser: Browser, url: string, timeoutMs = 120_000): Promise<PageResult> {
  const page = await browser.newPage();
  const logs: string[] = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  try {
    await page.goto(url);
    const features = await page.evaluate(async () => {
      const a = await navigator.gpu?.requestAdapter();
      if (!a) throw new Error('navigator.gpu.requestAdapter() gave no adapter');
      return [...a.features].sort();
    });
    const done = await page.waitForSelector('#result, #error', { timeout: timeoutMs });
    const id = await done.getAttribute('id');
    const text = (await done.textContent()) ?? '';
    if (id === 'error') throw new Error(`the page failed: ${text}\n${logs.join('\n')}`);
    return { ...(JSON.parse(text) as Omit<PageResult, 'features'>), features };
  } catch (e) {
    throw new Error(`${(e as Error).message}\nbrowser console:\n${logs.join('\n')}`);
  } finally {
    await page.close();
  }
}
