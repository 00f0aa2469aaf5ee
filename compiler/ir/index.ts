export * from './ops.ts';
export * from './shapes.ts';
export * from './graph.ts';
export * from './interpret.ts';
export * from './verify.ts';
export * from './print.ts';
