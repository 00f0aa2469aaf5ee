// Where a process's memory goes, phase by phase: at each mark, the resident set (VmRSS) and
// its high-water mark so far (VmHWM, from /proc/self/status; what "peak RSS" means here),
// and V8's view (heap in use, external memory, ArrayBuffer backing stores). RSS minus V8's
// heap and external memory is what native code holds: Dawn, lavapipe's device memory (a
// software device's buffers are host memory), its LLVM-compiled shaders, malloc's free lists.
import { readFileSync } from 'node:fs';

export interface MemoryMark {
  readonly phase: string;
  /** MiB, rounded. */
  readonly rss: number; readonly hwm: number; readonly heap: number; readonly external: number; readonly arrayBuffers: number;
}

const MiB = 2 ** 20;

/** VmRSS and VmHWM in bytes (Linux); process.memoryUsage's rss and resourceUsage's maxRSS elsewhere. */
export function residentBytes(): { rss: number; hwm: number } {
  try {
    const s = readFileSync('/proc/self/status', 'utf8');
    const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) * 1024;
    const rss = kb('VmRSS'), hwm = kb('VmHWM');
    if (Number.isFinite(rss) && Number.isFinite(hwm)) return { rss, hwm };
  } catch { /* not Linux: fall through */ }
  return { rss: process.memoryUsage().rss, hwm: process.resourceUsage().maxRSS * 1024 };
}

export class MemoryPhases {
  constructor(readonly marks: MemoryMark[] = []) {}

  mark(phase: string): MemoryMark {
    const m = process.memoryUsage(), r = residentBytes();
    const mark = { phase, rss: Math.round(r.rss / MiB), hwm: Math.round(r.hwm / MiB), heap: Math.round(m.heapUsed / MiB), external: Math.round(m.external / MiB), arrayBuffers: Math.round(m.arrayBuffers / MiB) };
    this.marks.push(mark);
    return mark;
  }

  /** A markdown table of the marks. */
  table(): string[] {
    return [
      '| phase | RSS MiB | peak RSS so far MiB | V8 heap MiB | V8 external MiB | of which ArrayBuffers MiB |', '|---|---|---|---|---|---|',
      ...this.marks.map((m) => `| ${m.phase} | ${m.rss} | ${m.hwm} | ${m.heap} | ${m.external} | ${m.arrayBuffers} |`),
    ];
  }
}
