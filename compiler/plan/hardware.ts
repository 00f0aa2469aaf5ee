// Devices and interconnects `infer plan` can predict for: peak memory bandwidth and peak
// arithmetic rate, as their makers publish them. Peak figures are what a roofline needs
// (the bound a kernel cannot beat); real kernels reach a fraction of them, which is why
// bench/plan.ts calibrates the bandwidth against a streaming-read kernel on the adapter
// it runs on.
//
// Two FLOP/s figures per device: `f32` (plain shader-core FMA, what infer's kernels use
// today: they accumulate in f32 on the vector units) and `f16` (the dense half-precision
// matrix rate: tensor cores, matrix cores, or on Apple the f16 shader rate, which
// equals f32 there). The plan uses `f32` unless told otherwise. Sparse (2:4) rates are
// never used.

export interface DeviceSpec {
  readonly name: string;
  /** What `--device` matches (lower case, no spaces). */
  readonly id: string;
  readonly kind: 'datacenter' | 'consumer' | 'apple';
  /** Peak DRAM/HBM bandwidth, GB/s (1e9 bytes/s). */
  readonly bandwidthGBs: number;
  /** Peak dense f32 (vector) rate, TFLOP/s. */
  readonly f32Tflops: number;
  /** Peak dense f16 matrix rate, TFLOP/s. */
  readonly f16Tflops: number;
  /** Device memory, GB. */
  readonly memoryGB: number;
}

export const DEVICES: readonly DeviceSpec[] = [
  // NVIDIA H200 datasheet (nvidia.com/en-us/data-center/h200): 4.8 TB/s HBM3e, 141 GB;
  // f32 67 TFLOPS, FP16 Tensor Core 1,979 TFLOPS with sparsity -> 989.5 dense.
  { name: 'NVIDIA H200 SXM', id: 'h200', kind: 'datacenter', bandwidthGBs: 4800, f32Tflops: 67, f16Tflops: 989.5, memoryGB: 141 },
  // NVIDIA H100 datasheet (nvidia.com/en-us/data-center/h100): SXM 3.35 TB/s, 80 GB;
  // f32 67 TFLOPS, FP16 Tensor Core 1,979 with sparsity -> 989.5 dense.
  { name: 'NVIDIA H100 SXM', id: 'h100', kind: 'datacenter', bandwidthGBs: 3350, f32Tflops: 67, f16Tflops: 989.5, memoryGB: 80 },
  // NVIDIA A100 datasheet (nvidia.com/en-us/data-center/a100): 80GB SXM 2,039 GB/s;
  // f32 19.5 TFLOPS, FP16 Tensor Core 312 TFLOPS (dense).
  { name: 'NVIDIA A100 80GB SXM', id: 'a100', kind: 'datacenter', bandwidthGBs: 2039, f32Tflops: 19.5, f16Tflops: 312, memoryGB: 80 },
  // NVIDIA L40S datasheet: 864 GB/s GDDR6, 48 GB; f32 91.6 TFLOPS; FP16 Tensor 733 with sparsity -> 366 dense.
  { name: 'NVIDIA L40S', id: 'l40s', kind: 'datacenter', bandwidthGBs: 864, f32Tflops: 91.6, f16Tflops: 366, memoryGB: 48 },
  // NVIDIA L4 datasheet: 300 GB/s, 24 GB; f32 30.3 TFLOPS; FP16 Tensor 242 with sparsity -> 121 dense.
  { name: 'NVIDIA L4', id: 'l4', kind: 'datacenter', bandwidthGBs: 300, f32Tflops: 30.3, f16Tflops: 121, memoryGB: 24 },
  // AMD Instinct MI300X data sheet (amd.com): 5.3 TB/s HBM3, 192 GB; f32 (vector) 81.7
  // TFLOPS; FP16 matrix 1,307.4 TFLOPS dense.
  { name: 'AMD Instinct MI300X', id: 'mi300x', kind: 'datacenter', bandwidthGBs: 5300, f32Tflops: 81.7, f16Tflops: 1307.4, memoryGB: 192 },
  // NVIDIA Ada Lovelace architecture whitepaper (RTX 4090): 1,008 GB/s GDDR6X, 24 GB;
  // f32 82.6 TFLOPS; FP16 Tensor with FP32 accumulate 165.2 TFLOPS dense.
  { name: 'NVIDIA GeForce RTX 4090', id: 'rtx4090', kind: 'consumer', bandwidthGBs: 1008, f32Tflops: 82.6, f16Tflops: 165.2, memoryGB: 24 },
  // NVIDIA Ampere GA102 whitepaper (RTX 3090): 936 GB/s, 24 GB; f32 35.6 TFLOPS; FP16
  // Tensor with FP32 accumulate 71 TFLOPS dense.
  { name: 'NVIDIA GeForce RTX 3090', id: 'rtx3090', kind: 'consumer', bandwidthGBs: 936, f32Tflops: 35.6, f16Tflops: 71, memoryGB: 24 },
  // AMD Radeon RX 7900 XTX specifications (amd.com): 960 GB/s, 24 GB; peak single
  // precision 61.4 TFLOPS, peak half precision 122.8 TFLOPS.
  { name: 'AMD Radeon RX 7900 XTX', id: 'rx7900xtx', kind: 'consumer', bandwidthGBs: 960, f32Tflops: 61.4, f16Tflops: 122.8, memoryGB: 24 },
  // Apple M1 press release (apple.com/newsroom, Nov 2020): 2.6 TFLOPS; 68.25 GB/s LPDDR4X
  // (128-bit at 4266 MT/s). Apple GPUs run f16 at the f32 rate.
  { name: 'Apple M1', id: 'm1', kind: 'apple', bandwidthGBs: 68.25, f32Tflops: 2.6, f16Tflops: 2.6, memoryGB: 16 },
  // Apple M1 Max press release (Oct 2021): 400 GB/s, 10.4 TFLOPS, up to 64 GB.
  { name: 'Apple M1 Max', id: 'm1max', kind: 'apple', bandwidthGBs: 400, f32Tflops: 10.4, f16Tflops: 10.4, memoryGB: 64 },
  // Apple M2 press release (Jun 2022): 100 GB/s, 3.6 TFLOPS, up to 24 GB.
  { name: 'Apple M2', id: 'm2', kind: 'apple', bandwidthGBs: 100, f32Tflops: 3.6, f16Tflops: 3.6, memoryGB: 24 },
  // Apple M2 Ultra press release (Jun 2023): 800 GB/s, 27.2 TFLOPS, up to 192 GB.
  { name: 'Apple M2 Ultra', id: 'm2ultra', kind: 'apple', bandwidthGBs: 800, f32Tflops: 27.2, f16Tflops: 27.2, memoryGB: 192 },
];

export interface InterconnectSpec {
  readonly name: string;
  readonly id: string;
  /** Bandwidth one device can send (and receive at once), GB/s per direction. */
  readonly gbsPerDirection: number;
}

export const INTERCONNECTS: readonly InterconnectSpec[] = [
  // NVIDIA H100 datasheet: NVLink 900 GB/s per GPU (both directions together) -> 450 each way.
  { name: 'NVLink 4 (H100/H200)', id: 'nvlink4', gbsPerDirection: 450 },
  // NVIDIA A100 datasheet: NVLink 600 GB/s per GPU, both directions -> 300 each way.
  { name: 'NVLink 3 (A100)', id: 'nvlink3', gbsPerDirection: 300 },
  // PCI-SIG: PCIe 5.0 is 32 GT/s per lane, 128b/130b coding: x16 = 63 GB/s per direction.
  { name: 'PCIe 5.0 x16', id: 'pcie5', gbsPerDirection: 63 },
  // PCI-SIG: PCIe 4.0 is 16 GT/s per lane: x16 = 31.5 GB/s per direction.
  { name: 'PCIe 4.0 x16', id: 'pcie4', gbsPerDirection: 31.5 },
  // IEEE 802.3 400GBASE: 400 Gb/s = 50 GB/s per direction (one NIC per device, as InfiniBand NDR).
  { name: '400 Gb/s Ethernet/InfiniBand', id: 'ib400', gbsPerDirection: 50 },
];

const norm = (s: string): string => s.toLowerCase().replace(/[^a-z0-9]/g, '');

/** The device whose id or name matches `name` (case, spaces and punctuation ignored), or null. */
export function findDevice(name: string): DeviceSpec | null {
  const n = norm(name);
  return DEVICES.find((d) => d.id === n || norm(d.name) === n || norm(d.name).endsWith(n)) ?? null;
}

export function findInterconnect(name: string): InterconnectSpec | null {
  const n = norm(name);
  return INTERCONNECTS.find((d) => d.id === n || norm(d.name) === n) ?? null;
}
