// CUDA as a runner Device (runtime/runner/device.ts), node only: a generated host runner
// (`infer compile --target cuda`, built by build.sh) started as `runner --serve` (or
// `runner-emu --serve`, the CPU emulation), spoken to over its stdin/stdout protocol
// (backends/cuda/runner/serve.h). Ids are this side's, so allocate, upload, bind and free
// only send their frame and return; the runner answers every frame in order, and an error
// answered to one of those is raised by the next compile, submit or settle (as WebGPU
// reports validation errors later). A runner that exits rejects everything still waiting
// with its status and the end of its stderr.
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { GPU_TARGET, type RenderedKernel } from '../../backends/backend.ts';
import { SERVE_PROTOCOL, sourceHash } from '../../backends/cuda/runner/serveTable.ts';
import { DeviceError, type BufferUse, type Device, type DeviceBinding, type DeviceBuffer, type DeviceKernel, type DeviceLimits, type Submission, type SubmissionResult } from '../runner/device.ts';
import { encodeRequest, OPS, ReplyReader, utf8, type Field, type Op, type Reply } from './protocol.ts';

interface CudaBuf extends DeviceBuffer { readonly id: number }
interface CudaKernel extends DeviceKernel { readonly id: number }
interface CudaBinding extends DeviceBinding { readonly id: number }

interface Waiting { readonly what: string; resolve(r: Reply): void; reject(e: Error): void }

/** Bytes of stderr kept for the message when the runner exits. */
const STDERR_TAIL = 4000;
/** Upload bytes per frame (the frame limit less the header). */
const UPLOAD_CHUNK = SERVE_PROTOCOL.maxFrameBytes - 64;

export class CudaDevice implements Device {
  readonly name = 'cuda' as const;
  readonly target = GPU_TARGET;
  readonly canTime: boolean = true;
  description = 'CUDA runner';
  limits: DeviceLimits = { maxBindingBytes: 0, maxBufferBytes: 0, maxGroupsPerDim: 0 };
  /** The runner is the CPU emulation (runner-emu): its device memory is the host's. */
  emulated = false;
  /** Engines using this device (runtime/cuda/engine.ts): the runner stops with the last. */
  users = 0;
  private readonly waiting: Waiting[] = [];
  private readonly reader = new ReplyReader();
  private nextId = 1;
  private stderr = '';
  /** The first error the runner answered to a frame nobody awaits (allocate, upload, bind, free). */
  private deferred: DeviceError | null = null;
  /** Set once the runner has exited or can no longer be spoken to. */
  private dead: DeviceError | null = null;
  private readonly exited: Promise<void>;

  private constructor(private readonly child: ChildProcessByStdio<Writable, Readable, Readable>, private readonly binary: string) {
    child.stdout.on('data', (c: Buffer) => this.onData(c));
    child.stderr.on('data', (c: Buffer) => { this.stderr = (this.stderr + c.toString('utf8')).slice(-STDERR_TAIL); });
    // Writing to a runner that has exited: the exit handler reports it.
    child.stdin.on('error', () => {});
    this.exited = new Promise((resolve) => {
      child.on('error', (e) => { this.fail(new DeviceError(`cannot start the CUDA runner ${binary}: ${e.message}`)); resolve(); });
      child.on('close', (code, signal) => {
        const tail = this.stderr.trim();
        this.fail(new DeviceError(`the CUDA runner ${binary} exited (${signal ? `signal ${signal}` : `status ${code}`})${tail ? `: ${tail}` : ''}`));
        resolve();
      });
    });
    this.idle();
  }

  /** Starts `binary --serve` and asks its limits. */
  static async open(binary: string): Promise<CudaDevice> {
    const child = spawn(binary, ['--serve'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const d = new CudaDevice(child, binary);
    const r = await d.request(OPS.hello, [], 'hello');
    const v = new DataView(r.buffer, r.byteOffset, r.byteLength);
    if (r.length < 32) throw new DeviceError(`the CUDA runner ${binary} answered hello with ${r.length} bytes`);
    const version = v.getUint32(0, true);
    if (version !== SERVE_PROTOCOL.version) {
      await d.close();
      throw new DeviceError(`the CUDA runner ${binary} speaks protocol ${version}, this infer ${SERVE_PROTOCOL.version}: rebuild it`);
    }
    d.limits = { maxGroupsPerDim: v.getUint32(8, true), maxBufferBytes: Number(v.getBigUint64(16, true)), maxBindingBytes: Number(v.getBigUint64(24, true)) };
    const flags = v.getUint32(12, true);
    (d as { canTime: boolean }).canTime = (flags & 1) !== 0;
    d.emulated = (flags & 2) !== 0;
    d.description = new TextDecoder().decode(r.subarray(32));
    return d;
  }

  /** The runner's process id (for diagnostics: a profiler, a debugger, a test that ends it). */
  get pid(): number | undefined { return this.child.pid; }

  allocate(label: string, bytes: number, use: BufferUse): DeviceBuffer {
    const id = this.nextId++;
    this.send(OPS.allocate, [{ u32: id }, { u8: SERVE_PROTOCOL.use[use] }, { u64: bytes }, { bytes: utf8(label) }], `allocate '${label}'`);
    const b: CudaBuf = { label, bytes, id };
    return b;
  }

  upload(buffer: DeviceBuffer, offset: number, data: ArrayBufferView): void {
    const b = buffer as CudaBuf;
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    // encodeRequest copies, so the caller may reuse `data` as soon as this returns.
    let at = 0;
    do {
      this.send(OPS.upload, [{ u32: b.id }, { u64: offset + at }, { bytes: bytes.subarray(at, at + UPLOAD_CHUNK) }], `upload to '${b.label}'`);
      at += UPLOAD_CHUNK;
    } while (at < bytes.length);
  }

  async compile(rendered: RenderedKernel): Promise<DeviceKernel> {
    const id = this.nextId++;
    const source = utf8(rendered.source).length;
    const r = await this.request(OPS.compile, [{ u32: id }, { u32: rendered.minTokens }, { u32: sourceHash(rendered.source) }, { u64: source }, { bytes: utf8(rendered.key) }],
      `kernel ${rendered.key} (variant for >= ${rendered.minTokens} tokens)`);
    const bindings = new DataView(r.buffer, r.byteOffset, r.byteLength).getUint32(0, true);
    if (bindings !== rendered.bindings.length) throw new DeviceError(`kernel ${rendered.key}: the runner's variant binds ${bindings} buffers, the rendering ${rendered.bindings.length}`);
    const k: CudaKernel = { rendered, id };
    return k;
  }

  bind(kernel: DeviceKernel, buffers: readonly DeviceBuffer[]): DeviceBinding {
    const k = kernel as CudaKernel, id = this.nextId++;
    this.send(OPS.bind, [{ u32: id }, { u32: k.id }, { u32: buffers.length }, ...buffers.map((b): Field => ({ u32: (b as CudaBuf).id }))], `bind kernel ${k.rendered.key}`);
    const b: CudaBinding = { kernel, id };
    return b;
  }

  async submit(work: Submission): Promise<SubmissionResult> {
    const fields: Field[] = [{ u32: work.copies.length }, { u32: work.dispatches.length }, { u32: work.readbacks.length }, { u8: work.timed ? 1 : 0 }];
    for (const c of work.copies) fields.push({ u32: (c.from as CudaBuf).id }, { u64: c.fromOffset }, { u32: (c.to as CudaBuf).id }, { u64: c.toOffset }, { u64: c.bytes });
    for (const d of work.dispatches) fields.push({ u32: (d.binding as CudaBinding).id }, ...d.grid.map((g): Field => ({ u32: g })));
    for (const r of work.readbacks) fields.push({ u32: (r.buffer as CudaBuf).id }, { u64: r.offset }, { u64: r.bytes });
    const r = await this.request(OPS.submit, fields, 'submit');
    const want = work.readbacks.reduce((n, b) => n + b.bytes, 0);
    const timings = work.timed ? work.dispatches.length * 8 : 0;
    if (r.length !== want + timings) throw new DeviceError(`the CUDA runner answered a submission with ${r.length} bytes, not ${want + timings}`);
    let at = 0;
    // Copies into fresh buffers: callers view them as Float32Array / Int32Array (aligned).
    const data = work.readbacks.map((b) => { const d = r.slice(at, at + b.bytes); at += b.bytes; return d; });
    return work.timed ? { data, timings: new Float64Array(r.slice(at).buffer) } : { data };
  }

  free(buffer: DeviceBuffer): void {
    if (this.dead) return;
    this.send(OPS.free, [{ u32: (buffer as CudaBuf).id }], `free '${buffer.label}'`);
  }

  /** Waits until the runner has answered every frame sent so far; raises an error answered to any of them. */
  async settle(): Promise<void> {
    await this.request(OPS.hello, [], 'settle');
  }

  /** Asks the runner to stop and waits for it (killed if it has not exited in `graceMs`). */
  async close(graceMs = 5000): Promise<void> {
    if (!this.dead) {
      this.send(OPS.shutdown, [], 'shutdown');
      this.child.stdin.end();
    }
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Sends a frame whose answer nobody awaits: an error is kept for the next awaited call. */
  private send(op: Op, fields: readonly Field[], what: string): void {
    this.write(op, fields, {
      what, resolve: () => {},
      reject: (e) => { this.deferred ??= e instanceof DeviceError ? e : new DeviceError(e.message); },
    });
  }

  /** Sends a frame and waits for its answer (after raising an earlier unawaited error). */
  private async request(op: Op, fields: readonly Field[], what: string): Promise<Uint8Array> {
    const reply = await new Promise<Reply>((resolve, reject) => this.write(op, fields, { what, resolve, reject }));
    if (this.deferred) throw this.deferred;
    return reply.payload;
  }

  private write(op: Op, fields: readonly Field[], w: Waiting): void {
    if (this.dead) { w.reject(this.dead); return; }
    const frame = encodeRequest(op, fields);
    if (this.waiting.length === 0) this.busy();
    this.waiting.push(w);
    this.child.stdin.write(frame);
  }

  private onData(chunk: Buffer): void {
    let replies: Reply[];
    try { replies = this.reader.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)); } catch (e) {
      this.fail(new DeviceError(`the CUDA runner ${this.binary}: ${(e as Error).message}`));
      this.child.kill('SIGKILL');
      return;
    }
    for (const r of replies) {
      const w = this.waiting.shift();
      if (!w) { this.fail(new DeviceError(`the CUDA runner ${this.binary} sent a reply nobody asked for`)); this.child.kill('SIGKILL'); return; }
      if (r.ok) w.resolve(r);
      else w.reject(new DeviceError(`${w.what}: ${new TextDecoder().decode(r.payload)}`));
    }
    if (this.waiting.length === 0) this.idle();
  }

  private fail(e: DeviceError): void {
    this.dead ??= e;
    for (const w of this.waiting.splice(0)) w.reject(this.dead);
  }

  // Node stays alive while an answer is awaited, not because an idle runner is running.
  private busy(): void { this.child.ref(); (this.child.stdout as { ref?: () => void }).ref?.(); }
  private idle(): void {
    this.child.unref();
    for (const s of [this.child.stdout, this.child.stderr, this.child.stdin]) (s as { unref?: () => void }).unref?.();
  }
}
