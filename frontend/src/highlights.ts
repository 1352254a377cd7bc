/**
 * Label-error highlights: places of the image a finding points at (a missing defect, a wrong
 * class, a loose box, an extra box, a shape labeled twice), handed over by the page (config.highlights) when the canvas
 * is opened from the label-error list. They are only shown: never part of the annotation, never
 * saved, never an undo step. This module reads them from the config, throwing away what cannot
 * be drawn, and says where to look; view/highlights draws and lists them.
 */
import type { BBox } from "./model/geometry";

export const HIGHLIGHT_KINDS = ["missing", "wrong_class", "loose_box", "extra", "duplicate"] as const;
export type HighlightKind = (typeof HIGHLIGHT_KINDS)[number];

/** One colour per kind, apart from the usual class colours (the panel's marks use them too). */
export const HIGHLIGHT_COLORS: Record<HighlightKind, string> = {
  missing: "#ff1744",
  wrong_class: "#d500f9",
  loose_box: "#ffab00",
  extra: "#00b0ff",
  duplicate: "#ff6d00",
};

/** What the page sends: see the web view's finding_highlights (image pixels). */
export interface HighlightJSON {
  box: [number, number, number, number];
  kind: HighlightKind;
  text: string;
  shape: string;
}

/** A highlight that can be drawn: its box inside the image, its kind known. */
export interface Highlight {
  box: [number, number, number, number];
  kind: HighlightKind;
  text: string;
  /** The id of the annotation shape it is about, or "" when it names none. */
  shape: string;
}

/** The most highlights shown; a finding names a handful, more is a page gone wrong. */
export const MAX_HIGHLIGHTS = 50;
const MAX_TEXT = 300;

function isKind(value: unknown): value is HighlightKind {
  return typeof value === "string" && (HIGHLIGHT_KINDS as readonly string[]).includes(value);
}

/**
 * The highlights of `raw` (the config's value, whatever it holds) that can be drawn on an image
 * of `width` × `height`: a box of four finite numbers with x1 < x2 and y1 < y2, clipped to the
 * image and still holding some of it, and a known kind. Anything else is left out, silently:
 * a bad highlight must not keep the canvas from opening.
 */
export function readHighlights(raw: unknown, width: number, height: number): Highlight[] {
  if (!Array.isArray(raw)) return [];
  const out: Highlight[] = [];
  for (const item of raw) {
    if (out.length >= MAX_HIGHLIGHTS) break;
    if (!item || typeof item !== "object") continue;
    const { box, kind, text, shape } = item as Record<string, unknown>;
    if (!isKind(kind) || !Array.isArray(box) || box.length !== 4) continue;
    if (!box.every((v) => typeof v === "number" && Number.isFinite(v))) continue;
    const [x1, y1, x2, y2] = box as number[];
    if (!(x1 < x2 && y1 < y2)) continue;
    const clipped: [number, number, number, number] = [
      Math.max(0, x1),
      Math.max(0, y1),
      width > 0 ? Math.min(width, x2) : x2,
      height > 0 ? Math.min(height, y2) : y2,
    ];
    if (!(clipped[0] < clipped[2] && clipped[1] < clipped[3])) continue;
    out.push({
      box: clipped,
      kind,
      text: typeof text === "string" ? text.trim().slice(0, MAX_TEXT) : "",
      shape: typeof shape === "string" ? shape : "",
    });
  }
  return out;
}

/**
 * The part of the image to bring into view for a highlight: its box with a margin of half its
 * size on every side, at least `size` image pixels across (a tiny defect still shows its
 * surroundings).
 */
export function highlightFocus(highlight: Highlight, size = 120): BBox {
  const [x1, y1, x2, y2] = highlight.box;
  const mx = Math.max((x2 - x1) * 0.5, (size - (x2 - x1)) / 2, 0);
  const my = Math.max((y2 - y1) * 0.5, (size - (y2 - y1)) / 2, 0);
  return { minX: x1 - mx, minY: y1 - my, maxX: x2 + mx, maxY: y2 + my };
}

/** The rectangle on screen (left, top, width, height) of an image box under `toScreen`. */
export function screenRect(
  box: readonly [number, number, number, number],
  toScreen: (p: [number, number]) => [number, number],
): { left: number; top: number; width: number; height: number } {
  // A quarter turn swaps the corners: take both and order them.
  const [ax, ay] = toScreen([box[0], box[1]]);
  const [bx, by] = toScreen([box[2], box[3]]);
  const left = Math.min(ax, bx);
  const top = Math.min(ay, by);
  return { left, top, width: Math.abs(bx - ax), height: Math.abs(by - ay) };
}
