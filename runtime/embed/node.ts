// infer-compiler/runtime/node: what a generated module needs in node and a browser does
// not have: a WebGPU device from Dawn's bindings, and weights from a file path (GGUF, or a
// Hugging Face safetensors checkpoint) read by the project's file readers. Kept out of the
// browser-safe core (runtime/embed/index.ts) because it imports node: modules and Dawn.
import { statSync } from 'node:fs';
import type { ModelInfo, ParamInfo } from '../../program/model.ts';
import { createGpuDevice } from '../webgpu/device.ts';
import { GgufFile, GgufWeights } from '../weights/gguf.ts';
import { SafetensorsWeights } from '../weights/hfLlama.ts';
import type { LoadedWeights, ProgressCallback, WeightsLoader } from './weightsInput.ts';

/** A WebGPU device on Dawn (lavapipe on a machine without a GPU) with the limits the kernels need. */
export function nodeDevice(): Promise<GPUDevice> {
  return createGpuDevice();
}

export interface PathWeightsOptions {
  /** Query and KV head counts for a safetensors checkpoint's q/k reordering (default: the model's). */
  readonly heads?: { readonly heads: number; readonly kvHeads: number };
}

/** Weights from a GGUF file (by its magic) or a safetensors checkpoint (file, index or directory). */
export function weightsFromPath(path: string, o: PathWeightsOptions = {}): WeightsLoader {
  return {
    kind: 'loader',
    name: path,
    load: async (params: readonly ParamInfo[], onProgress?: ProgressCallback, model?: Pick<ModelInfo, 'heads' | 'kvHeads'>): Promise<LoadedWeights> => {
      const progress = (p: { bytes: number; totalBytes: number }) => onProgress?.({ source: path, loadedBytes: p.bytes, totalBytes: p.totalBytes });
      if (isGgufPath(path)) {
        // The weights read tensors from the open file as the device asks for them (streamed
        // loading), so the file stays open until the source's release() closes it.
        const g = GgufFile.open(path);
        try { return { source: GgufWeights.fromFile(g, params, { onProgress: progress }), metadata: g.metadata }; } catch (e) { g.close(); throw e; }
      }
      const heads = o.heads ?? (model ? { heads: model.heads, kvHeads: model.kvHeads } : undefined);
      if (!heads) throw new Error(`${path}: a safetensors checkpoint needs the model's head counts: weightsFromPath(path, { heads: { heads, kvHeads } })`);
      return { source: SafetensorsWeights.load(path, params, heads, { onProgress: progress }) };
    },
  };
}

function isGgufPath(path: string): boolean {
  if (statSync(path, { throwIfNoEntry: false })?.isDirectory()) return false;
  if (/\.gguf$/i.test(path)) return true;
  if (/\.safetensors(\.index\.json)?$|\.json$/i.test(path)) return false;
  return true; // the GGUF reader names what is wrong with anything else
}
