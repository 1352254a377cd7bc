import type { LabelDef, ShapeJSON } from "../src/types";

export const LABELS: LabelDef[] = [
  {
    id: 1,
    name: "scratch",
    color: "#e53935",
    hotkey: "1",
    attributes: [
      { name: "severity", options: ["minor", "major", "critical"], default: "minor" },
      { name: "direction", options: ["along", "across"], default: "along" },
    ],
  },
  { id: 2, name: "dent", color: "#1e88e5", hotkey: "2", attributes: [{ name: "severity", options: ["minor", "major", "critical"], default: "minor" }] },
  { id: 3, name: "burr", color: "#43a047", hotkey: "3", attributes: [] },
];

export const box = (x1: number, y1: number, x2: number, y2: number, label = 1, extra: Partial<ShapeJSON> = {}): ShapeJSON => ({
  type: "box",
  points: [
    [x1, y1],
    [x2, y2],
  ],
  label,
  ...extra,
});

export const polygon = (points: [number, number][], label = 2): ShapeJSON => ({ type: "polygon", points, label });

/** An in-memory Storage, optionally refusing writes like a full localStorage. */
export class MemoryStorage implements Storage {
  private data = new Map<string, string>();
  full = false;
  /** Refuse writes that would hold more than this many entries. */
  capacity = Infinity;
  get length(): number {
    return this.data.size;
  }
  clear(): void {
    this.data.clear();
  }
  getItem(key: string): string | null {
    return this.data.get(key) ?? null;
  }
  key(index: number): string | null {
    return [...this.data.keys()][index] ?? null;
  }
  removeItem(key: string): void {
    this.data.delete(key);
  }
  setItem(key: string, value: string): void {
    if (this.full || (!this.data.has(key) && this.data.size >= this.capacity)) {
      throw new DOMException("quota", "QuotaExceededError");
    }
    this.data.set(key, value);
  }
}
