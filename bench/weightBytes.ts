// Device bytes of the weights: examples/llama-20m.infer's architecture written as GGUF
// files with the same seeded random weights in f32, f16, q8_0, q4_0 and q4_K (matrices;
// norms stay f32, as in real files), each loaded on WebGPU with its weights kept
// compact. Side by side: the file's tensor bytes, the Program's param bytes (what
// buffers.ts allocates), the engine's allocated bytes (weights + activations + KV),
// and "before": the param bytes under the previous rule, where only q8_0 / q4_0 stayed
// compact and f16 / q4_K were widened to f32 at load.
// q4_K rows need K a multiple of 256: llama-20m's ffn_down (K = ffn = 1408) is written
// as q4_0 in the q4_K file (llama.cpp falls back per tensor likewise, to its q5_0).
// Writes bench/results/weightBytes.{json,md}; progress on stderr.
//   node --import tsx bench/weightBytes.ts
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { wgslBackend } from '../backends/wgsl/render.ts';
import { compileSpec } from '../compiler/compile.ts';
import { bufferBytes, type Program } from '../program/program.ts';
import { blockElements, isCompactType } from '../program/quant.ts';
import { createGpuDevice } from '../runtime/webgpu/device.ts';
import { WebGpuEngine } from '../runtime/webgpu/engine.ts';
import { GgufFile, GgufWeights } from '../runtime/weights/gguf.ts';
import { gv, writeGguf, type WriterTensor } from '../runtime/weights/ggufWriter.ts';
import { randomTensor } from '../runtime/weights/random.ts';
import { runBench, writeResults } from './report.ts';

const SPEC = 'examples/llama-20m.infer';
const TYPES = ['f32', 'f16', 'q8_0', 'q4_0', 'q4_K'] as const;
type FileType = (typeof TYPES)[number];
const log = (s: string) => process.stderr.write(s + '\n');
const MB = 1e6;

function compile(text: string, weightTypes?: Map<string, string>): Program {
  const c = compileSpec(text, SPEC, { weightTypes });
  if (!c.program) throw new Error(`${SPEC} does not compile: ${c.diagnostics.map((d) => d.message).join('; ')}`);
  return c.program;
}

/** A matrix's type in a `type` file: K-quant rows need K % 256 == 0, else q4_0. */
const matrixType = (type: FileType, K: number): FileType => (type === 'q4_K' && K % blockElements('q4_K') ? 'q4_0' : type);

const paramBytes = (p: Program) => p.buffers.filter((b) => b.kind === 'param').reduce((s, b) => s + bufferBytes(b, { maxTokens: 1, pages: 1, maxSeqs: 1 }), 0);

interface Row { type: FileType; file_tensor_bytes: number; device_param_bytes: number; padding_bytes: number; compact_params: number; f32_params: number; before_param_bytes: number; engine_allocated_bytes: number }

runBench('weightBytes', async () => {
  const text = readFileSync(SPEC, 'utf8');
  const plain = compile(text);
  const dir = mkdtempSync(join(tmpdir(), 'infer-weight-bytes-'));
  const device = await createGpuDevice();
  const rows: Row[] = [];
  try {
    for (const type of TYPES) {
      const file = join(dir, `llama-20m-${type}.gguf`);
      writeGguf(file, [['general.architecture', gv.str('llama')], ['general.name', gv.str(`llama-20m ${type}`)]],
        plain.params.map((p): WriterTensor => ({ name: `${p.name}.weight`, dims: p.shape, type: p.shape.length === 2 ? matrixType(type, p.shape[0]) : 'f32', data: randomTensor(p.name, p.shape, 11) })));
      const fileBytes = GgufFile.with(file, (g) => g.tensors.reduce((s, t) => s + t.bytes, 0));
      const weights = GgufWeights.load(file, plain.params);
      const types = weights.types();
      const program = compile(text, types);
      const before = compile(text, new Map([...types].filter(([, t]) => t === 'q8_0' || t === 'q4_0')));
      const params = program.buffers.filter((b) => b.kind === 'param');
      log(`${type}: compiling kernels and uploading`);
      const engine = await WebGpuEngine.create({ device, program, backend: wgslBackend, weights });
      const allocated = engine.stats().bytesAllocated;
      engine.dispose();
      const device_param_bytes = paramBytes(program);
      rows.push({
        type, file_tensor_bytes: fileBytes, device_param_bytes, padding_bytes: device_param_bytes - fileBytes,
        compact_params: params.filter((b) => isCompactType(b.dtype)).length, f32_params: params.filter((b) => b.dtype === 'f32').length,
        before_param_bytes: paramBytes(before), engine_allocated_bytes: allocated,
      });
      log(`${type}: file ${fileBytes}, device params ${device_param_bytes}, before ${paramBytes(before)}, engine ${allocated}`);
    }
  } finally {
    device.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
  const f = (n: number) => (n / MB).toFixed(2);
  const md = [
    '# Weight bytes on the device: llama-20m-shaped random GGUF files', '',
    'Each file\'s matrices in one type (norms f32; in the q4_K file ffn_down, K = 1408, is q4_0: K-quant rows need K % 256 == 0).',
    'Device params = what the runtime allocates for weights now; padding = device params - file tensor bytes',
    '(at most 2 bytes per block tensor, under 8 per f16 tensor); before = the same files when only q8_0 / q4_0 stayed compact.', '',
    '| file | file tensors MB | device params MB | padding bytes | compact / f32 params | before MB | engine allocated MB (weights + activations + KV) |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.type} | ${f(r.file_tensor_bytes)} | ${f(r.device_param_bytes)} | ${r.padding_bytes} | ${r.compact_params} / ${r.f32_params} | ${f(r.before_param_bytes)} | ${f(r.engine_allocated_bytes)} |`),
  ].join('\n') + '\n';
  writeResults('weightBytes', rows, md);
  process.stdout.write(md);
});
