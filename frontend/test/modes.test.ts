import { describe, expect, it } from "vitest";
import { ModeError, ModeMachine, TRANSITIONS } from "../src/model/modes";

const VIEW = { scale: 1, x: 0, y: 0, rotation: 0 as const };

describe("the mode state machine", () => {
  it("starts idle with the select tool", () => {
    const modes = new ModeMachine();
    expect(modes.mode.kind).toBe("idle");
    expect(modes.tool).toBe("select");
  });

  it("draws a box from idle and returns to idle with both corners", () => {
    const modes = new ModeMachine();
    modes.setTool("box");
    modes.beginBox([10, 10]);
    expect(modes.mode).toMatchObject({ kind: "drawing", shape: "box", anchor: [10, 10] });
    expect(modes.finishBox([50, 40])).toEqual([
      [10, 10],
      [50, 40],
    ]);
    expect(modes.mode.kind).toBe("idle");
  });

  it("collects polygon vertices; Backspace removes the last, and removing the only one cancels", () => {
    const modes = new ModeMachine();
    modes.addVertex("polygon", [0, 0]);
    modes.addVertex("polygon", [10, 0]);
    modes.addVertex("polygon", [10, 10]);
    modes.removeLastVertex();
    expect(modes.mode).toMatchObject({ kind: "drawing", vertices: [[0, 0], [10, 0]] });
    modes.removeLastVertex();
    modes.removeLastVertex();
    expect(modes.mode.kind).toBe("idle");
  });

  it("Esc cancels a drawing", () => {
    const modes = new ModeMachine();
    modes.addVertex("polygon", [0, 0]);
    modes.cancel();
    expect(modes.mode.kind).toBe("idle");
  });

  it("panning in the middle of a polygon resumes the polygon afterwards", () => {
    const modes = new ModeMachine();
    modes.addVertex("polygon", [0, 0]);
    modes.addVertex("polygon", [5, 0]);
    modes.beginPan([100, 100], VIEW);
    expect(modes.mode.kind).toBe("panning");
    modes.endPan();
    expect(modes.mode).toMatchObject({ kind: "drawing", shape: "polygon", vertices: [[0, 0], [5, 0]] });
  });

  it("panning from idle returns to idle", () => {
    const modes = new ModeMachine();
    modes.beginPan([0, 0], VIEW);
    expect(modes.endPan()?.startScreen).toEqual([0, 0]);
    expect(modes.mode.kind).toBe("idle");
  });

  it("edits start only from idle and end in idle", () => {
    const modes = new ModeMachine();
    modes.beginEdit("move", 7, -1, [1, 1], [[0, 0]]);
    expect(modes.mode).toMatchObject({ kind: "editing", action: "move", uid: 7 });
    expect(() => modes.beginPan([0, 0], VIEW)).toThrow(ModeError);
    expect(modes.endEdit()?.uid).toBe(7);
    expect(modes.mode.kind).toBe("idle");
    modes.addVertex("polygon", [0, 0]);
    expect(() => modes.beginEdit("move", 1, -1, [0, 0], [])).toThrow(ModeError);
  });

  it("switching tools abandons the shape being drawn", () => {
    const modes = new ModeMachine();
    modes.setTool("polygon");
    modes.addVertex("polygon", [0, 0]);
    modes.setTool("box");
    expect(modes.mode.kind).toBe("idle");
    expect(modes.tool).toBe("box");
  });

  it("announces every state change to listeners", () => {
    const modes = new ModeMachine();
    const seen: string[] = [];
    modes.onChange((mode, tool) => seen.push(`${mode.kind}/${tool}`));
    modes.setTool("box");
    modes.beginBox([0, 0]);
    modes.moveCursor([5, 5]); // cursor moves are not announced
    modes.finishBox([5, 5]);
    expect(seen).toEqual(["idle/box", "drawing/box", "idle/box"]);
  });

  it("lists every transition the handlers use", () => {
    expect(TRANSITIONS.editing).toEqual(["idle"]);
    expect(TRANSITIONS.panning).toContain("drawing");
  });
});
