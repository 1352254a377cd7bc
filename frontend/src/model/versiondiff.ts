/**
 * What changed between two saved versions of an annotation, shape by shape. Shapes are matched
 * by their id (the canvas gives every shape it creates one): a shape only in the older version
 * was removed, only in the newer one added, in both with another geometry, class or attributes
 * changed, else unchanged. Shapes without an id (saved before ids, or by a script) can only be
 * matched by being identical; any other difference shows as one removed and one added.
 */
import type { ShapeJSON } from "../types";

export type DiffKind = "removed" | "added" | "changed" | "unchanged";

export interface DiffEntry {
  kind: DiffKind;
  /** The shape as the newer version has it (the older one's for "removed"). */
  shape: ShapeJSON;
  /** For "changed": the shape as the older version had it. */
  before?: ShapeJSON;
}

export type DiffCounts = Record<DiffKind, number>;

/** What makes two shapes "the same": type, points to 1/100 px, class and attributes (not the score). */
export function shapeSignature(shape: ShapeJSON): string {
  const attributes = Object.keys(shape.attributes ?? {})
    .sort()
    .map((name) => [name, shape.attributes?.[name]]);
  const points = shape.points.map(([x, y]) => [Math.round(x * 100) / 100, Math.round(y * 100) / 100]);
  return JSON.stringify([shape.type, points, shape.label, attributes]);
}

export function diffVersions(older: ShapeJSON[], newer: ShapeJSON[]): DiffEntry[] {
  const olderById = new Map<string, ShapeJSON>();
  const olderAnonymous = new Map<string, ShapeJSON[]>();
  for (const shape of older) {
    if (shape.id) olderById.set(shape.id, shape);
    else {
      const key = shapeSignature(shape);
      olderAnonymous.set(key, [...(olderAnonymous.get(key) ?? []), shape]);
    }
  }
  const entries: DiffEntry[] = [];
  for (const shape of newer) {
    const before = shape.id ? olderById.get(shape.id) : olderAnonymous.get(shapeSignature(shape))?.shift();
    if (!before) {
      entries.push({ kind: "added", shape });
      continue;
    }
    if (shape.id) olderById.delete(shape.id);
    if (shapeSignature(before) === shapeSignature(shape)) entries.push({ kind: "unchanged", shape });
    else entries.push({ kind: "changed", shape, before });
  }
  for (const shape of olderById.values()) entries.push({ kind: "removed", shape });
  for (const left of olderAnonymous.values()) for (const shape of left) entries.push({ kind: "removed", shape });
  return entries;
}

export function countDiff(entries: DiffEntry[]): DiffCounts {
  const counts: DiffCounts = { removed: 0, added: 0, changed: 0, unchanged: 0 };
  for (const entry of entries) counts[entry.kind]++;
  return counts;
}
