// infer-compiler/runtime: the small, browser-safe core every generated module imports
// (`infer compile SPEC --target ts`). No node: imports and no Dawn: a bundler takes it as
// it is. In node, infer-compiler/runtime/node adds a Dawn device and file-path weights.
export { createModelFromParts, loadWeights, ModelInputError } from './model.ts';
export type { CreateModelOptions, GenerateOptions, GeneratedToken, GenerateStop, GenerateSummary, InferModel, ModelParts } from './model.ts';
export { EmbeddedBackend, MissingKernelError } from './kernels.ts';
export type { EmbeddedKernels, KernelVariants } from './kernels.ts';
export { readWeightBytes, WeightsInputError } from './weightsInput.ts';
export type { LoadedWeights, LoadProgress, ProgressCallback, WeightsInput, WeightsLoader } from './weightsInput.ts';
export { requestInferDevice, NoAdapterError } from '../webgpu/deviceCore.ts';
export type { Program } from '../../program/program.ts';
export type { ModelInfo } from '../../program/model.ts';
export type { RenderedKernel } from '../../backends/backend.ts';
export type { Tokenizer } from '../tokenizer/types.ts';
