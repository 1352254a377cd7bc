// Every text the canvas shows comes from web/canvas_strings.py: these tests keep the Python list,
// the TypeScript that uses it and the harness configs in step.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import devConfig from "../dev-config.json";
import zh from "../dev-strings.zh-Hans.json";

const root = join(__dirname, "..");
const python = readFileSync(join(root, "../src/defectlab/web/canvas_strings.py"), "utf8");
const serverKeys = [...python.matchAll(/^\s*"([^"]+)": _\(/gm)].map((m) => m[1]);

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith(".ts") ? [path] : [];
  });
}

const code = sources(join(root, "src"))
  .map((path) => readFileSync(path, "utf8"))
  .join("\n");
const literalKeys = new Set([
  ...[...code.matchAll(/\b(?:t|msg)\(\s*"([^"]+)"/g)].map((m) => m[1]),
  ...[...code.matchAll(/"@([a-zA-Z.]+)"/g)].map((m) => m[1]),
]);
// Keys built from a value at run time: t(`tool.${tool}`) and the like.
const dynamicKeys = [
  ...["select", "box", "polygon", "points"].map((k) => `tool.${k}`),
  ...["box", "polygon", "points"].map((k) => `shape.${k}`),
  ...["new", "in_progress", "submitted", "approved", "rejected"].map((k) => `status.${k}`),
  ...["tooFew", "noArea", "crosses"].map((k) => `polygon.${k}`),
  ...["removed", "added", "changed", "unchanged"].map((k) => `diff.${k}`),
  ...["missing", "wrong_class", "loose_box", "extra", "duplicate"].map((k) => `highlights.kind.${k}`),
];
const usedKeys = new Set([...literalKeys, ...dynamicKeys]);

describe("canvas strings", () => {
  it("are listed once each in canvas_strings.py", () => {
    expect(serverKeys.length).toBeGreaterThan(50);
    expect(new Set(serverKeys).size).toBe(serverKeys.length);
  });

  it("cover every key the canvas uses", () => {
    const missing = [...usedKeys].filter((key) => !serverKeys.includes(key));
    expect(missing).toEqual([]);
  });

  it("hold no key the canvas never uses", () => {
    const unused = serverKeys.filter((key) => !usedKeys.has(key));
    expect(unused).toEqual([]);
  });

  it("are all in the dev harness, in English and in Chinese", () => {
    expect(Object.keys(devConfig.strings).sort()).toEqual([...serverKeys].sort());
    expect(Object.keys(zh).sort()).toEqual([...serverKeys].sort());
  });

  it("keep their placeholders in every language", () => {
    const placeholders = (text: string) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
    const en = devConfig.strings as Record<string, string>;
    for (const key of serverKeys) {
      expect(placeholders((zh as Record<string, string>)[key]), key).toEqual(placeholders(en[key]));
    }
  });

  it("match the English in canvas_strings.py", () => {
    for (const [key, text] of Object.entries(devConfig.strings)) {
      expect(python, key).toContain(JSON.stringify(text));
    }
  });
});
