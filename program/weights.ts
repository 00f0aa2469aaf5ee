// Where an engine gets a model's weights: f32 tensors by parameter name, or the file's raw
// blocks for a device that keeps them quantised. Implemented by runtime/weights (random,
// GGUF, safetensors); read by every engine and by the interpreter.

/** Weights in storage layout (2-D [K, N] params: element (k, n) at n*K + k). */
export interface WeightSource {
  get(name: string): Float32Array;
  /**
   * The tensor exactly as the file stores it (ggml type name and bytes), for devices that
   * keep quantised weights in blocks (runtime/runner/buffers.ts). Optional: sources without
   * it (random weights) can only feed f32 programs.
   */
  getRaw?(name: string): { readonly type: string; readonly bytes: Uint8Array };
  /**
   * Part of a tensor's stored bytes: into.length bytes from `byteOffset` into `into`; returns
   * the file's type name. Optional: a source with it lets an upload stream a compact tensor in
   * chunks (runtime/runner/paramUpload.ts) instead of holding it whole.
   */
  readRawInto?(name: string, byteOffset: number, into: Uint8Array): string;
  /** Drops the host copy of one tensor once a device holds it (uploads stream the weights tensor by tensor). */
  evict?(name: string): void;
  /** Drops host copies once a device holds the weights (a GGUF file would otherwise stay in memory twice). */
  release?(): void;
}
