import type { LabelDef, ShapeJSON } from "../src/types";

export function random(seed: number): () => number;
export function makeShapes(
  count: number,
  width: number,
  height: number,
  labels: LabelDef[],
  seed?: number,
  options?: { maxSize?: number; boxesOnly?: boolean; polygonsOnly?: boolean; scores?: boolean },
): ShapeJSON[];
export const SEVERITY: string[];
