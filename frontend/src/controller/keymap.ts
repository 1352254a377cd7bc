/**
 * Every keyboard and mouse shortcut, as data: the "?" overlay is drawn from this table, so the
 * overlay and the handlers cannot drift apart unnoticed (a test walks both).
 * Key caps are written as on the keyboard; words among them (Space, wheel...) are translated.
 */
import { msg } from "../i18n";

export interface Shortcut {
  /** Alternatives, each a list of caps pressed together; a cap starting with @ names a translated word (a strings key). */
  keys: string[][];
  action: string;
  /** Only in this workspace mode. */
  only?: "annotate" | "review";
}

export interface ShortcutGroup {
  title: string;
  items: Shortcut[];
}

export const SHORTCUTS: ShortcutGroup[] = [
  {
    title: msg("help.group.tools"),
    items: [
      { keys: [["V"]], action: msg("help.select") },
      { keys: [["B"]], action: msg("help.box") },
      { keys: [["P"]], action: msg("help.polygon") },
      { keys: [["K"]], action: msg("help.points") },
      { keys: [["Enter"], ["@key.doubleClick"]], action: msg("help.finish") },
      { keys: [["Backspace"]], action: msg("help.removeVertex") },
      { keys: [["Esc"]], action: msg("help.cancel") },
    ],
  },
  {
    title: msg("help.group.edit"),
    items: [
      { keys: [["1 … 9"]], action: msg("help.labelKeys") },
      { keys: [["Tab"], ["Shift", "Tab"]], action: msg("help.attrFocus") },
      { keys: [["["], ["]"]], action: msg("help.attrValue") },
      { keys: [["Shift", "1 … 9"]], action: msg("help.tagKeys") },
      { keys: [["Delete"], ["Backspace"]], action: msg("help.delete") },
      { keys: [["← ↑ → ↓"], ["Shift", "← ↑ → ↓"]], action: msg("help.nudge") },
      { keys: [["Alt", "@key.click"]], action: msg("help.removePoint") },
      { keys: [["H"], ["Shift", "H"]], action: msg("help.hide") },
      { keys: [["L"]], action: msg("help.lock") },
      { keys: [["Ctrl", "Z"]], action: msg("help.undo") },
      { keys: [["Ctrl", "Shift", "Z"], ["Ctrl", "Y"]], action: msg("help.redo") },
      { keys: [["Ctrl", "Shift", "V"]], action: msg("help.copyPrevious"), only: "annotate" },
    ],
  },
  {
    title: msg("help.group.proposals"),
    items: [
      // Review shows the submitted shapes; proposals there are a read-only layer.
      { keys: [["Enter"]], action: msg("help.acceptOne"), only: "annotate" },
      { keys: [["A"]], action: msg("help.acceptAll"), only: "annotate" },
      { keys: [["Delete"]], action: msg("help.dropOne"), only: "annotate" },
    ],
  },
  {
    title: msg("help.group.view"),
    items: [
      { keys: [["@key.wheel"]], action: msg("help.zoomCursor") },
      { keys: [["+"], ["−"]], action: msg("help.zoomKeys") },
      { keys: [["F"]], action: msg("help.fit") },
      { keys: [["Z"]], action: msg("help.zoomSelection") },
      { keys: [["R"], ["Shift", "R"]], action: msg("help.rotate") },
      { keys: [["@key.space", "@key.drag"], ["@key.middleDrag"]], action: msg("help.pan") },
      { keys: [["/"]], action: msg("help.search") },
      { keys: [["Shift", "E"]], action: msg("help.highlights") },
    ],
  },
  {
    title: msg("help.group.task"),
    items: [
      { keys: [["Ctrl", "S"]], action: msg("help.save") },
      { keys: [["Ctrl", "Enter"]], action: msg("help.submit"), only: "annotate" },
      { keys: [["Ctrl", "Enter"]], action: msg("help.approve"), only: "review" },
      { keys: [["I"]], action: msg("help.issue"), only: "review" },
      { keys: [[","], ["."], ["PageUp"], ["PageDown"]], action: msg("help.neighbour") },
      { keys: [["?"]], action: msg("help.help") },
    ],
  },
];
