// `infer plan SPEC`: memory and predicted speed from the compiled Program (compiler/plan/),
// as a table, as JSON (--json) and as a roofline chart (--svg FILE). Every flag is checked
// here; a bad one stops the command with exit status 2 and one line saying what was wanted.
import { readFileSync, writeFileSync } from 'node:fs';
import { planSpeculative, SpecPlanError, type Ready } from '../compiler/specDraft.ts';
import { DEVICES, findDevice, findInterconnect, INTERCONNECTS } from '../compiler/plan/hardware.ts';
import { buildPlan, PlanError, tableDevice, type PlanDevice, type PlanOptions } from '../compiler/plan/plan.ts';
import { planTable, rooflineSvg } from '../compiler/plan/format.ts';
import { ParallelPlanError } from '../compiler/plan/parallel.ts';
import { ArgError, didYouMean, parseDecimal, parseInteger } from './args.ts';
import { CliError, compileOrReport, type Io } from './main.ts';

export const PLAN_USAGE = `infer plan SPEC [--weights FILE] [--context N] [--batch B] [--tokens-per-forward N]
                  [--device NAME | --bandwidth GB/s --flops TFLOP/s] [--lookahead K --acceptance A]
                  [--devices G --parallel tp|ep [--interconnect NAME]] [--json] [--svg FILE] [--no-fuse LIST]
  Memory and predicted speed from the compiled program: weights, KV (formula written out, and what GQA,
  KV quantisation, paging and the window save), activations, device bytes; bytes and FLOPs per decode step
  and per prefill token, arithmetic intensity, roofline time on a device and which resource binds.
  --weights: a GGUF file's tensor types (q8_0 / q4_0 stay as blocks). --context defaults to max_context,
  --batch to 1. --device: ${DEVICES.map((d) => d.id).join(', ')} (default h100), or give --bandwidth and --flops.
  --lookahead K --acceptance A: speculative decoding (the spec's draft model costed, or none: n-gram lookup).
  --devices G --parallel tp|ep: communication per token over --interconnect ${INTERCONNECTS.map((d) => d.id).join(', ')} (default nvlink4).
  Exit status 2 for a bad flag.`;

export const PLAN_OPTIONS = {
  weights: { type: 'string' }, context: { type: 'string' }, batch: { type: 'string' }, 'tokens-per-forward': { type: 'string' },
  device: { type: 'string' }, bandwidth: { type: 'string' }, flops: { type: 'string' },
  lookahead: { type: 'string' }, acceptance: { type: 'string' },
  devices: { type: 'string' }, parallel: { type: 'string' }, interconnect: { type: 'string' },
  json: { type: 'boolean' }, svg: { type: 'string' }, 'no-fuse': { type: 'string' },
} as const;

export interface PlanFlags {
  weights?: string; context?: string; batch?: string; 'tokens-per-forward'?: string; device?: string; bandwidth?: string; flops?: string;
  lookahead?: string; acceptance?: string; devices?: string; parallel?: string; interconnect?: string; json?: boolean; svg?: string; 'no-fuse'?: string;
}

const bad = (msg: string): never => { throw new CliError(`plan: ${msg}`, 2); };

function chooseDevice(f: PlanFlags): PlanDevice | undefined {
  if (f.device !== undefined) {
    if (f.bandwidth !== undefined || f.flops !== undefined) bad('give --device or --bandwidth and --flops, not both');
    const d = findDevice(f.device);
    if (!d) bad(`unknown device '${f.device}'${didYouMean(f.device.toLowerCase(), DEVICES.map((x) => x.id))}; known: ${DEVICES.map((x) => x.id).join(', ')}`);
    return tableDevice(d!);
  }
  if ((f.bandwidth === undefined) !== (f.flops === undefined)) bad('--bandwidth and --flops go together (GB/s and TFLOP/s)');
  if (f.bandwidth === undefined) return undefined;
  const bandwidthGBs = parseDecimal('bandwidth', f.bandwidth, 0, 0), tflops = parseDecimal('flops', f.flops, 0, 0);
  if (bandwidthGBs <= 0 || tflops <= 0) bad('--bandwidth and --flops must be above 0');
  return { name: 'custom device', bandwidthGBs, tflops, source: 'flags' };
}

function options(file: string, c: Ready, f: PlanFlags): PlanOptions {
  const m = c.program.model;
  const o: { -readonly [K in keyof PlanOptions]: PlanOptions[K] } = {
    context: parseInteger('context', f.context, m.maxContext, 1, m.maxContext),
    batch: parseInteger('batch', f.batch, 1, 1, 1 << 20),
    tokensPerForward: parseInteger('tokens-per-forward', f['tokens-per-forward'], m.maxContext, 1, 1 << 20),
    device: chooseDevice(f),
  };
  if (f.lookahead !== undefined || f.acceptance !== undefined) {
    if (f.acceptance === undefined) bad('--lookahead needs --acceptance A (the probability a drafted token is accepted, 0..1)');
    const acceptance = parseDecimal('acceptance', f.acceptance, 0, 0);
    if (acceptance > 1) bad(`--acceptance must be in 0..1, got '${f.acceptance}'`);
    // The spec's own proposer when it has a speculative section; else a model-free one (n-gram lookup).
    let draftName = 'no draft model (n-gram lookup)', draft = null, lookahead: number | undefined;
    if (c.ast.speculative) {
      try {
        const s = planSpeculative(c, file, readFileSync(file, 'utf8'), {});
        if (s && s.proposer.kind !== 'ngram') { draft = s.proposer.draft.program; draftName = `${s.proposer.kind} ${draft.model.name}`; }
        lookahead = s?.lookahead;
      } catch (e) { if (e instanceof SpecPlanError) throw new CliError(e.message); throw e; }
    }
    lookahead = parseInteger('lookahead', f.lookahead, lookahead ?? -1, 1, 64);
    if (lookahead < 1) bad('--acceptance needs --lookahead K (the spec has no speculative section to take it from)');
    o.speculative = { lookahead, acceptance, draftName, draft };
  }
  if (f.devices !== undefined || f.parallel !== undefined || f.interconnect !== undefined) {
    if (f.devices === undefined || f.parallel === undefined) bad('--devices G and --parallel tp|ep go together');
    const devices = parseInteger('devices', f.devices, 1, 1, 4096);
    if (f.parallel !== 'tp' && f.parallel !== 'ep') bad(`--parallel takes tp or ep, got '${f.parallel}'${didYouMean(f.parallel!, ['tp', 'ep'])}`);
    const link = findInterconnect(f.interconnect ?? 'nvlink4');
    if (!link) bad(`unknown interconnect '${f.interconnect}'${didYouMean(f.interconnect!.toLowerCase(), INTERCONNECTS.map((x) => x.id))}; known: ${INTERCONNECTS.map((x) => x.id).join(', ')}`);
    o.parallel = { devices, mode: f.parallel as 'tp' | 'ep', link: link! };
  }
  return o;
}

export async function planCommand(file: string, f: PlanFlags, io: Io): Promise<number> {
  const weightTypes = f.weights ? (await import('./weights.ts')).fileWeightTypes(f.weights) : undefined;
  const c = compileOrReport(file, { noFuse: f['no-fuse'], weightTypes }, io);
  if (!c) return 1;
  let plan;
  try {
    plan = buildPlan(c.program, options(file, c as Ready, f));
  } catch (e) {
    if (e instanceof ArgError || e instanceof PlanError || e instanceof ParallelPlanError) bad(e.message);
    throw e;
  }
  if (f.svg !== undefined) {
    try { writeFileSync(f.svg, rooflineSvg(plan!)); } catch (e) { throw new CliError(`cannot write ${f.svg}: ${(e as Error).message}`); }
  }
  io.out(f.json ? JSON.stringify(plan, null, 2) + '\n' : planTable(plan!));
  return 0;
}
