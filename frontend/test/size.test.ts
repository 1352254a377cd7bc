// The sizes the house keeps, for the canvas as for the Python side (tests/test_code_size.py): no
// module over 600 lines, no function over 80. A module that grows past the limit is split by noun;
// a function that grows past it is split into well-named steps. Functions are found with the
// TypeScript compiler's parser, so methods, constructors, accessors and arrow functions all count.
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const SOURCE = fileURLToPath(new URL("../src", import.meta.url));
const MAX_MODULE_LINES = 600;
const MAX_FUNCTION_LINES = 80;

function modules(dir = SOURCE): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return modules(path);
      return entry.isFile() && entry.name.endsWith(".ts") ? [path] : [];
    })
    .sort();
}

/** Lines as Python's str.splitlines() counts them: a final newline does not open another line. */
function lineCount(text: string): number {
  const lines = text.split(/\r\n|\r|\n/);
  if (lines[lines.length - 1] === "") lines.pop();
  return lines.length;
}

function functionName(node: ts.Node, source: ts.SourceFile): string {
  const owner = ts.isClassLike(node.parent) && node.parent.name ? `${node.parent.name.text}.` : "";
  if (ts.isConstructorDeclaration(node)) return `${owner}constructor`;
  const named = node as ts.Node & { name?: ts.Node };
  if (named.name) return owner + named.name.getText(source);
  // An arrow or function expression takes the name of what it is assigned to, if anything.
  const parent = node.parent;
  if ((ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent)) && parent.name) {
    return owner + parent.name.getText(source);
  }
  return "<anonymous>";
}

interface TooLong {
  name: string;
  line: number;
  lines: number;
}

/** Every function-like node of `text` longer than `limit` lines, counted from its first to its last line. */
function longFunctions(fileName: string, text: string, limit = MAX_FUNCTION_LINES): TooLong[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found: TooLong[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && (node as ts.FunctionLikeDeclaration).body) {
      const first = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
      const last = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      const lines = last - first + 1;
      if (lines > limit) found.push({ name: functionName(node, source), line: first + 1, lines });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

const name = (path: string) => relative(join(SOURCE, ".."), path);

describe("code size", () => {
  it("looks where the sources are", () => {
    const names = modules().map(name);
    expect(names).toContain("src/index.ts");
    expect(names).toContain("src/controller/controller.ts");
  });

  it("measures functions of every kind, nested ones apart", () => {
    const body = (n: number) => Array.from({ length: n - 2 }, (_, i) => `  x += ${i};`).join("\n");
    const text = [
      `function long(x: number) {\n${body(81)}\n}`,
      `function short(x: number) {\n${body(80)}\n}`,
      `class Box {\n  constructor(x: number) {\n${body(81)}\n  }\n  get size() {\n${body(81)}\n  }\n}`,
      `const arrow = (x: number) => {\n${body(81)}\n};`,
    ].join("\n");
    expect(longFunctions("sample.ts", text).map((f) => `${f.name} ${f.lines}`)).toEqual([
      "long 81",
      "Box.constructor 81",
      "Box.size 81",
      "arrow 81",
    ]);
    expect(lineCount("a\nb\n")).toBe(2);
    expect(lineCount("a\r\nb")).toBe(2);
  });

  it(`keeps every module at most ${MAX_MODULE_LINES} lines`, () => {
    const tooLong = modules()
      .map((path) => ({ path, lines: lineCount(readFileSync(path, "utf8")) }))
      .filter(({ lines }) => lines > MAX_MODULE_LINES)
      .map(({ path, lines }) => `${name(path)}: ${lines} lines`);
    expect(tooLong, `split these modules by noun (at most ${MAX_MODULE_LINES})`).toEqual([]);
  });

  it(`keeps every function at most ${MAX_FUNCTION_LINES} lines`, () => {
    const tooLong = modules().flatMap((path) =>
      longFunctions(path, readFileSync(path, "utf8")).map((f) => `${name(path)}:${f.line} ${f.name}: ${f.lines} lines`),
    );
    expect(tooLong, `split these functions (at most ${MAX_FUNCTION_LINES})`).toEqual([]);
  });
});
