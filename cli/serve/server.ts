// The HTTP side of `infer serve` on node:http: routing, API keys, request bodies, and
// every failure as an OpenAI-style error object. Requests only ever reach the one
// Scheduler (runtime/serve/): whatever one request does wrong is answered to it alone,
// and the decode loop keeps serving the others.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Tokenizer } from '../../runtime/tokenizer/index.ts';
import type { Scheduler } from '../../runtime/serve/scheduler.ts';
import { ApiError } from './protocol.ts';
import { completions, json } from './completions.ts';
import { chatCompletions, chatSetup } from './chat.ts';

export interface ServerOptions {
  readonly scheduler: Scheduler;
  readonly modelId: string;
  readonly tokenizer: Tokenizer | null;
  /** When set, /v1/ routes need `Authorization: Bearer KEY` (/health and /metrics stay open). */
  readonly apiKey?: string;
}

export interface RunningServer {
  readonly server: Server;
  readonly url: string;
  /** Stops accepting, lets running requests finish for up to `drainMs`, closes. True when all finished. */
  close(drainMs?: number): Promise<boolean>;
}

const MAX_BODY = 4 << 20;

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (b: Buffer) => {
      size += b.length;
      if (size > MAX_BODY) { reject(new ApiError(413, `the request body is over ${MAX_BODY} bytes`)); req.destroy(); return; }
      parts.push(b);
    });
    req.on('error', reject);
    req.on('end', () => {
      const text = Buffer.concat(parts).toString('utf8');
      try { resolve(JSON.parse(text)); } catch (e) {
        reject(new ApiError(400, `the request body is not valid JSON: ${(e as Error).message}`, null, 'invalid_json'));
      }
    });
  });
}

function authorised(req: IncomingMessage, key: string | undefined): boolean {
  if (key === undefined) return true;
  const got = Buffer.from(req.headers.authorization ?? '');
  const want = Buffer.from(`Bearer ${key}`);
  return got.length === want.length && timingSafeEqual(got, want);
}

export function createHandler(o: ServerOptions, state: { draining: boolean }): (req: IncomingMessage, res: ServerResponse) => void {
  const created = Math.floor(Date.now() / 1000);
  // The weights' chat template, parsed once (or the 501 /v1/chat/completions answers without one).
  const chat = chatSetup(o.tokenizer);
  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const key = `${req.method} ${path}`;
    if (key === 'GET /health') return json(res, state.draining ? 503 : 200, { status: state.draining ? 'draining' : 'ok', ...o.scheduler.load });
    if (key === 'GET /metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      res.end(o.scheduler.metricsText());
      return;
    }
    const known = ['GET /v1/models', 'POST /v1/completions', 'POST /v1/chat/completions'];
    if (!known.includes(key)) throw new ApiError(404, `no route ${req.method} ${path} (this server has GET /v1/models, POST /v1/completions, POST /v1/chat/completions, GET /health, GET /metrics)`, null, 'not_found');
    if (!authorised(req, o.apiKey)) throw new ApiError(401, 'incorrect API key: send it as Authorization: Bearer KEY', null, 'invalid_api_key');
    if (key === 'GET /v1/models') return json(res, 200, { object: 'list', data: [{ id: o.modelId, object: 'model', created, owned_by: 'infer' }] });
    const body = await readBody(req);
    if (state.draining) throw new ApiError(503, 'the server is shutting down', null, 'shutting_down');
    if (key === 'POST /v1/chat/completions') return chatCompletions({ ...o, chat }, body, res);
    return completions(o, body, res);
  };
  return (req, res) => {
    route(req, res).catch((e: unknown) => {
      const err = e instanceof ApiError ? e : new ApiError(500, `internal error: ${e instanceof Error ? e.message : String(e)}`);
      if (res.headersSent) { if (!res.destroyed) res.end(`data: ${err.body()}\n\ndata: [DONE]\n\n`); return; }
      if (res.destroyed) return;
      res.writeHead(err.status, { 'content-type': 'application/json' });
      res.end(err.body());
    });
  };
}

export async function startServer(o: ServerOptions & { host: string; port: number }): Promise<RunningServer> {
  const state = { draining: false };
  const server = createServer(createHandler(o, state));
  // Clients pool connections: a socket the server closes as idle just as a client reuses it
  // resets that request. Idle sockets stay well past the few seconds clients keep them.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => { server.off('error', reject); resolve(); });
  });
  const a = server.address() as AddressInfo;
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  return {
    server, url: `http://${host}:${a.port}`,
    async close(drainMs = 30_000) {
      state.draining = true;
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeIdleConnections();
      const finished = await o.scheduler.drain(drainMs);
      // The last responses were written as their tickets resolved; give them a moment to flush.
      await new Promise((r) => setTimeout(r, 50));
      server.closeAllConnections();
      await closed;
      return finished;
    },
  };
}
