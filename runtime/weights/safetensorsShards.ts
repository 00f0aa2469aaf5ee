// A Hugging Face checkpoint as one set of tensors, however it is stored: a single
// `.safetensors` file, or shards listed by `model.safetensors.index.json`
// ({ "metadata": {...}, "weight_map": { tensor name: shard file name } }: most published
// llama and Mixtral checkpoints are sharded), or a directory holding either. Every shard's
// header is read and checked on open (safetensors.ts); the index must agree with the shards
// (each listed tensor present in the shard it names, no tensor in two shards, shard names
// plain file names beside the index). Errors name the file and byte offset they concern.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { SafetensorsError, SafetensorsFile, type SafetensorsTensor } from './safetensors.ts';

export const INDEX_NAME = 'model.safetensors.index.json';

/** True for paths this reads as a (possibly sharded) checkpoint rather than one file. */
export function isCheckpointSet(path: string): boolean {
  if (/\.safetensors\.index\.json$/i.test(path)) return true;
  try { return statSync(path).isDirectory(); } catch { return false; }
}

export class SafetensorsShards {
  /** Every tensor of every shard. */
  readonly tensors: readonly SafetensorsTensor[];
  private readonly owner = new Map<string, SafetensorsFile>();

  private constructor(readonly path: string, private readonly files: SafetensorsFile[]) {
    const all: SafetensorsTensor[] = [];
    for (const f of files) {
      for (const t of f.tensors) {
        const prev = this.owner.get(t.name);
        if (prev) throw new SafetensorsError(f.path, t.fileOffset, `is also in ${prev.path}: a tensor may be in one shard only`, t.name);
        this.owner.set(t.name, f);
        all.push(t);
      }
    }
    this.tensors = all;
  }

  /** A single file, an index, or a directory with an index or a model.safetensors. */
  static open(path: string): SafetensorsShards {
    let index = path;
    if (isDirectory(path)) {
      if (existsSync(join(path, INDEX_NAME))) index = join(path, INDEX_NAME);
      else if (existsSync(join(path, 'model.safetensors'))) return new SafetensorsShards(path, [SafetensorsFile.open(join(path, 'model.safetensors'))]);
      else throw new SafetensorsError(path, 0, `a directory without ${INDEX_NAME} or model.safetensors`);
    }
    if (!/\.json$/i.test(index)) return new SafetensorsShards(path, [SafetensorsFile.open(path)]);
    const shardNames = readIndex(index);
    const files: SafetensorsFile[] = [];
    try {
      for (const name of shardNames.keys()) files.push(SafetensorsFile.open(join(dirname(index), name)));
      const set = new SafetensorsShards(index, files);
      for (const [name, listed] of shardNames) {
        const f = files.find((x) => basename(x.path) === name)!;
        for (const t of listed) {
          if (!f.tensor(t)) throw new SafetensorsError(index, 0, `the index puts tensor ${t} in ${name}, which does not have it`, t);
        }
      }
      return set;
    } catch (e) {
      for (const f of files) f.close();
      throw e;
    }
  }

  static with<R>(path: string, f: (s: SafetensorsShards) => R): R {
    const s = SafetensorsShards.open(path);
    try { return f(s); } finally { s.close(); }
  }

  tensor(name: string): SafetensorsTensor | undefined { return this.owner.get(name)?.tensor(name); }

  /** The file a tensor is in (for errors that name it). */
  fileOf(t: SafetensorsTensor): string { return this.owner.get(t.name)?.path ?? this.path; }

  readFloat32(t: SafetensorsTensor): Float32Array {
    const f = this.owner.get(t.name);
    if (!f) throw new SafetensorsError(this.path, 0, 'not in this checkpoint', t.name);
    return f.readFloat32(t);
  }

  close(): void { for (const f of this.files) f.close(); }
}

function isDirectory(path: string): boolean {
  try { return statSync(path).isDirectory(); } catch { return false; }
}

/** Shard file name -> the tensors the index puts there. */
function readIndex(index: string): Map<string, string[]> {
  let text: string;
  try { text = readFileSync(index, 'utf8'); } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new SafetensorsError(index, 0, `cannot open: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  let json: unknown;
  try { json = JSON.parse(text); } catch (e) {
    throw new SafetensorsError(index, 0, `the index is not valid JSON: ${(e as Error).message}`);
  }
  const map = (json as { weight_map?: unknown })?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new SafetensorsError(index, 0, "the index has no 'weight_map' object (tensor name -> shard file)");
  const shards = new Map<string, string[]>();
  for (const [tensor, file] of Object.entries(map as Record<string, unknown>)) {
    // Shards sit beside the index: a path that climbs out or goes elsewhere is refused.
    if (typeof file !== 'string' || file !== basename(file) || file === '..' || !/\.safetensors$/i.test(file)) {
      throw new SafetensorsError(index, 0, `the index maps tensor ${tensor} to ${JSON.stringify(file)}; shards must be .safetensors file names beside the index`, tensor);
    }
    const list = shards.get(file) ?? [];
    list.push(tensor);
    shards.set(file, list);
  }
  if (shards.size === 0) throw new SafetensorsError(index, 0, "the index's weight_map lists no tensors");
  return shards;
}
