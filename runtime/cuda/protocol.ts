// The frames of `runner --serve` (backends/cuda/runner/serve.h documents them; the numbers
// come from SERVE_PROTOCOL, the one definition the generated C++ reads too): requests
// encoded, replies cut from a byte stream. Little-endian throughout.
import { SERVE_PROTOCOL } from '../../backends/cuda/runner/serveTable.ts';

export const OPS = SERVE_PROTOCOL.ops;
export type Op = (typeof OPS)[keyof typeof OPS];

/** One field of a request: an unsigned integer of 1, 4 or 8 bytes, or raw bytes. */
export type Field = { u8: number } | { u32: number } | { u64: number } | { bytes: Uint8Array };

const text = new TextEncoder();
export const utf8 = (s: string): Uint8Array => text.encode(s);

export class ProtocolError extends Error {}

function fieldBytes(f: Field): number {
  if ('u8' in f) return 1;
  if ('u32' in f) return 4;
  if ('u64' in f) return 8;
  return f.bytes.length;
}

/** A request frame: u32 length, u8 op, the fields. */
export function encodeRequest(op: Op, fields: readonly Field[]): Uint8Array {
  const body = 1 + fields.reduce((n, f) => n + fieldBytes(f), 0);
  if (body > SERVE_PROTOCOL.maxFrameBytes) throw new ProtocolError(`a request of ${body} bytes is over the protocol's ${SERVE_PROTOCOL.maxFrameBytes}`);
  const out = new Uint8Array(4 + body);
  const v = new DataView(out.buffer);
  v.setUint32(0, body, true);
  out[4] = op;
  let at = 5;
  for (const f of fields) {
    if ('u8' in f) { checkUint(f.u8, 0xff); out[at] = f.u8; }
    else if ('u32' in f) { checkUint(f.u32, 0xffffffff); v.setUint32(at, f.u32, true); }
    else if ('u64' in f) { checkUint(f.u64, Number.MAX_SAFE_INTEGER); v.setBigUint64(at, BigInt(f.u64), true); }
    else out.set(f.bytes, at);
    at += fieldBytes(f);
  }
  return out;
}

function checkUint(n: number, max: number): void {
  if (!Number.isInteger(n) || n < 0 || n > max) throw new ProtocolError(`${n} does not fit its field (0..${max})`);
}

export interface Reply { readonly ok: boolean; readonly payload: Uint8Array }

/**
 * Cuts reply frames out of the stdout byte stream as chunks arrive. Chunks are kept until a
 * frame is whole, then joined once (a large readback arrives in many chunks).
 */
export class ReplyReader {
  private chunks: Uint8Array[] = [];
  private held = 0;

  /** Adds a chunk; returns every reply completed by it. */
  push(chunk: Uint8Array): Reply[] {
    this.chunks.push(chunk);
    this.held += chunk.length;
    const out: Reply[] = [];
    for (;;) {
      if (this.held < 4) return out;
      const head = this.peek(4);
      const len = new DataView(head.buffer, head.byteOffset, 4).getUint32(0, true);
      if (len < 1) throw new ProtocolError('the runner sent a reply frame with no status byte');
      if (this.held < 4 + len) return out;
      const frame = this.take(4 + len);
      const status = frame[4];
      if (status !== SERVE_PROTOCOL.status.ok && status !== SERVE_PROTOCOL.status.error) throw new ProtocolError(`the runner sent a reply with status ${status}`);
      out.push({ ok: status === SERVE_PROTOCOL.status.ok, payload: frame.subarray(5) });
    }
  }

  private peek(n: number): Uint8Array {
    if (this.chunks[0].length >= n) return this.chunks[0];
    return this.join().subarray(0, n);
  }

  private join(): Uint8Array {
    if (this.chunks.length > 1) {
      const all = new Uint8Array(this.held);
      let at = 0;
      for (const c of this.chunks) { all.set(c, at); at += c.length; }
      this.chunks = [all];
    }
    return this.chunks[0];
  }

  private take(n: number): Uint8Array {
    const all = this.join();
    const frame = all.slice(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.held = rest.length;
    return frame;
  }
}
