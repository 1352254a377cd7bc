/**
 * The annotation being edited: shapes (annotations and not-yet-accepted proposals), image tags,
 * the selection, and an undo history of every change to what will be saved.
 * The selection remembers how it came about: a shape the person picked (clicked, or chose in the
 * list) takes a class chosen next; a shape selected for them because they just drew it does not,
 * so "1, draw, 2, draw" gives two classes and never relabels the first shape.
 *
 * Proposals someone already decided (the server's fates) are not offered again. In review the
 * proposals are no shapes at all: they are a read-only reference layer, hidden unless asked for,
 * so the reviewer sees exactly what was submitted and cannot accept anything twice.
 */
import type { LabelDef, Point, PredictionJSON, ProposalDecision, ShapeJSON, ShapeType } from "../types";
import { type BBox, bboxOf, normalizeBox, pointsEqual, roundPoint } from "./geometry";
import { type Command, History } from "./history";

export interface Shape {
  /** Stable in this session; never sent to the server. */
  readonly uid: number;
  type: ShapeType;
  points: Point[];
  label: number;
  attributes: Record<string, string>;
  score?: number;
  id?: string;
  /** Set while the shape is a model's proposal that nobody has accepted yet. */
  proposal: ProposalRef | null;
  /** The proposal this shape came from, kept once accepted: was it accepted as is or changed? */
  origin?: ProposalRef & { signature: string };
  hidden: boolean;
  locked: boolean;
  bbox: BBox;
}

/** "geometry" is a drag in progress: redraw, but nothing to save or list yet. */
export type ChangeKind = "shapes" | "geometry" | "tags" | "selection" | "visibility" | "history";
export type ChangeListener = (kind: ChangeKind) => void;

/** A proposal: its prediction and its index in that prediction's shapes. */
export interface ProposalRef {
  predictionId: number;
  index: number;
}

export interface DocumentOptions {
  /** Review: proposals are a read-only reference layer, never shapes to accept. */
  review?: boolean;
}

export interface PredictionInfo {
  id: number;
  modelName: string;
  modelVersion: string;
}

type DocCommand = Command<AnnotationDocument>;

function clonePoints(points: readonly Point[]): Point[] {
  return points.map(([x, y]) => [x, y] as Point);
}

export class AnnotationDocument {
  shapes: Shape[] = [];
  tags = new Set<string>();
  predictions: PredictionInfo[] = [];
  /** The predictions as loaded, with every shape and its fate (drafts restore from these). */
  sourcePredictions: PredictionJSON[] = [];
  /** The proposals offered as pending when loaded; their fates are worked out on save. */
  offered: ProposalRef[] = [];
  /** Fates decided before this load that the server has not stored yet (from a draft). */
  priorDecisions: ProposalDecision[] = [];
  /** Review: the proposals, drawn faded when `showReference` is on; never selected or saved. */
  reference: Shape[] = [];
  showReference = false;
  readonly reviewing: boolean;
  selectedUid: number | null = null;
  /** The person picked the selected shape (see select); false for a shape selected because it was just drawn. */
  selectionPicked = false;
  /** Index into the selected shape's attributes that Tab / [ / ] act on. */
  attributeFocus = 0;
  /** Increments on every change to what would be saved. */
  revision = 0;
  savedRevision = 0;

  readonly labels: LabelDef[];
  private readonly labelById = new Map<number, LabelDef>();
  private readonly byUid = new Map<number, Shape>();
  private readonly history: History<AnnotationDocument>;
  private readonly listeners = new Set<ChangeListener>();
  private nextUid = 1;

  constructor(labels: LabelDef[], historyDepth?: number, options: DocumentOptions = {}) {
    this.reviewing = options.review ?? false;
    this.labels = labels;
    for (const label of labels) this.labelById.set(label.id, label);
    this.history = new History(historyDepth);
  }

  // ---- reading ------------------------------------------------------------------------------

  get(uid: number | null): Shape | undefined {
    return uid === null ? undefined : this.byUid.get(uid);
  }

  get selected(): Shape | undefined {
    return this.get(this.selectedUid);
  }

  label(id: number): LabelDef | undefined {
    return this.labelById.get(id);
  }

  indexOf(uid: number): number {
    const shape = this.byUid.get(uid);
    return shape ? this.shapes.indexOf(shape) : -1;
  }

  get dirty(): boolean {
    return this.revision !== this.savedRevision;
  }

  get canUndo(): boolean {
    return this.history.canUndo;
  }

  get canRedo(): boolean {
    return this.history.canRedo;
  }

  proposals(): Shape[] {
    return this.shapes.filter((s) => s.proposal !== null);
  }

  /** The annotation's shapes and the proposals waiting for a decision, counted apart. */
  counts(): { shapes: number; proposals: number } {
    let proposals = 0;
    for (const shape of this.shapes) if (shape.proposal) proposals++;
    return { shapes: this.shapes.length - proposals, proposals };
  }

  /** A shape's number (from 1) among the annotation's shapes, or for a proposal among the proposals. */
  ordinal(uid: number): number {
    const shape = this.byUid.get(uid);
    if (!shape) return 0;
    let n = 0;
    for (const other of this.shapes) {
      if ((other.proposal === null) === (shape.proposal === null)) n++;
      if (other === shape) return n;
    }
    return 0;
  }

  /** The shape a class choice relabels: the selected one, only if the person picked it and it is not locked. */
  get relabelTarget(): Shape | undefined {
    const shape = this.selectionPicked ? this.selected : undefined;
    return shape && !shape.locked ? shape : undefined;
  }

  /** The annotation as the server stores it: accepted shapes only, coordinates to 1/100 px. */
  annotationJSON(): ShapeJSON[] {
    return this.shapes.filter((s) => s.proposal === null).map(toJSON);
  }

  tagList(): string[] {
    return [...this.tags];
  }

  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // ---- loading ------------------------------------------------------------------------------

  /** Replace everything; the undo history starts empty and the document counts as saved. */
  load(shapes: ShapeJSON[], tags: string[], predictions: PredictionJSON[] = []): void {
    this.shapes = [];
    this.byUid.clear();
    for (const json of shapes) this.insert(this.create(json, null), this.shapes.length);
    this.predictions = predictions.map(({ id, modelName, modelVersion }) => ({ id, modelName, modelVersion }));
    this.sourcePredictions = predictions;
    this.offered = [];
    this.priorDecisions = [];
    this.reference = [];
    for (const prediction of predictions) {
      prediction.shapes.forEach((json, index) => {
        if (this.reviewing) {
          this.reference.push(this.create(json, null));
          return;
        }
        if (prediction.fates?.[index]) return; // decided already: not offered again
        const ref = { predictionId: prediction.id, index };
        const shape = this.create(json, ref);
        shape.origin = { ...ref, signature: signature(shape) };
        this.offered.push(ref);
        this.insert(shape, this.shapes.length);
      });
    }
    this.tags = new Set(tags);
    this.selectedUid = null;
    this.selectionPicked = false;
    this.attributeFocus = 0;
    this.history.clear();
    this.revision++;
    this.savedRevision = this.revision;
    this.emit("shapes");
    this.emit("tags");
    this.emit("selection");
    this.emit("history");
  }

  /** Replace the accepted shapes, keeping proposals; not undoable (used by tests and benchmarks). */
  replaceAnnotations(shapes: ShapeJSON[]): void {
    const proposals = this.proposals();
    this.shapes = [];
    this.byUid.clear();
    for (const json of shapes) this.insert(this.create(json, null), this.shapes.length);
    for (const p of proposals) this.insert(p, this.shapes.length);
    if (this.selectedUid !== null && !this.byUid.has(this.selectedUid)) this.select(null);
    this.history.clear();
    this.touch("shapes");
    this.emit("selection");
    this.emit("history");
  }

  /** Review: show or hide the proposals as a faded, read-only layer. */
  setReferenceShown(shown: boolean): void {
    this.showReference = shown;
    this.emit("visibility");
  }

  markSaved(): void {
    this.savedRevision = this.revision;
    this.emit("history");
  }

  // ---- commands (undoable) ------------------------------------------------------------------

  addShape(init: { type: ShapeType; points: Point[]; label: number; attributes?: Record<string, string> }): Shape {
    const attributes = init.attributes ?? this.defaultAttributes(init.label);
    const shape = this.create({ ...init, attributes, id: newShapeId() }, null);
    const index = this.shapes.length;
    this.execute({
      apply: (doc) => doc.insert(shape, index),
      revert: (doc) => doc.detach(shape),
    });
    return shape;
  }

  /** Add several shapes as one step: one undo takes them all away again. */
  addShapes(inits: { type: ShapeType; points: Point[]; label: number; attributes?: Record<string, string> }[]): Shape[] {
    const added = inits.map((init) =>
      this.create({ ...init, attributes: this.defaultAttributes(init.label, init.attributes), id: newShapeId() }, null),
    );
    if (added.length === 0) return added;
    const index = this.shapes.length;
    this.execute({
      apply: (doc) => added.forEach((shape, k) => doc.insert(shape, index + k)),
      revert: (doc) => added.forEach((shape) => doc.detach(shape)),
    });
    return added;
  }

  removeShapes(uids: number[]): void {
    const entries = uids
      .map((uid) => this.byUid.get(uid))
      .filter((s): s is Shape => s !== undefined && !s.locked)
      .map((shape) => ({ shape, index: this.shapes.indexOf(shape) }))
      .sort((a, b) => a.index - b.index);
    if (entries.length === 0) return;
    this.execute({
      apply: (doc) => {
        for (const { shape } of entries) doc.detach(shape);
      },
      revert: (doc) => {
        for (const { shape, index } of entries) doc.insert(shape, index);
      },
    });
  }

  /** Change geometry during a drag without recording it; `commitGeometry` records the drag once. */
  previewGeometry(uid: number, points: Point[]): void {
    const shape = this.byUid.get(uid);
    if (!shape) return;
    this.setPoints(shape, points);
    this.emit("geometry");
  }

  /** Record a geometry change from `before` to the shape's current points. */
  commitGeometry(uid: number, before: Point[]): void {
    const shape = this.byUid.get(uid);
    if (!shape || pointsEqual(before, shape.points)) return;
    const after = clonePoints(shape.points);
    const from = clonePoints(before);
    this.history.push({
      apply: (doc) => doc.setPoints(shape, after),
      revert: (doc) => doc.setPoints(shape, from),
    });
    this.touch("shapes");
    this.emit("history");
  }

  setGeometry(uid: number, points: Point[]): void {
    const shape = this.byUid.get(uid);
    if (!shape || shape.locked || pointsEqual(points, shape.points)) return;
    const before = clonePoints(shape.points);
    const after = clonePoints(points);
    this.execute({
      apply: (doc) => doc.setPoints(shape, after),
      revert: (doc) => doc.setPoints(shape, before),
    });
  }

  /** Change a shape's class; attributes the new class shares keep their values. */
  setLabel(uid: number, label: number): void {
    const shape = this.byUid.get(uid);
    if (!shape || shape.locked || shape.label === label) return;
    const before = { label: shape.label, attributes: { ...shape.attributes } };
    const after = { label, attributes: this.defaultAttributes(label, shape.attributes) };
    this.execute({
      apply: (doc) => doc.assign(shape, after),
      revert: (doc) => doc.assign(shape, before),
    });
  }

  setAttribute(uid: number, name: string, value: string): void {
    const shape = this.byUid.get(uid);
    if (!shape || shape.locked || shape.attributes[name] === value) return;
    const before = { label: shape.label, attributes: { ...shape.attributes } };
    const after = { label: shape.label, attributes: { ...shape.attributes, [name]: value } };
    this.execute({
      apply: (doc) => doc.assign(shape, after),
      revert: (doc) => doc.assign(shape, before),
    });
  }

  toggleTag(name: string): void {
    const flip = (doc: AnnotationDocument) => {
      if (doc.tags.has(name)) doc.tags.delete(name);
      else doc.tags.add(name);
      doc.touch("tags");
    };
    this.execute({ apply: flip, revert: flip });
  }

  /** Turn proposals into annotations (one undo step for all of them). */
  acceptProposals(uids: number[]): void {
    const accepted = uids
      .map((uid) => this.byUid.get(uid))
      .filter((s): s is Shape => s !== undefined && s.proposal !== null)
      .map((shape) => ({ shape, proposal: shape.proposal, score: shape.score }));
    if (accepted.length === 0) return;
    this.execute({
      apply: (doc) => {
        for (const { shape } of accepted) {
          shape.proposal = null;
          shape.id ??= newShapeId();
          // An accepted shape is a person's judgement; the model's confidence no longer applies.
          shape.score = undefined;
        }
        doc.touch("shapes");
      },
      revert: (doc) => {
        for (const { shape, proposal, score } of accepted) {
          shape.proposal = proposal;
          shape.score = score;
        }
        doc.touch("shapes");
      },
    });
  }

  acceptAllProposals(predictionId?: number): void {
    this.acceptProposals(
      this.proposals()
        .filter((s) => predictionId === undefined || s.proposal?.predictionId === predictionId)
        .map((s) => s.uid),
    );
  }

  dropAllProposals(predictionId?: number): void {
    this.removeShapes(
      this.proposals()
        .filter((s) => predictionId === undefined || s.proposal?.predictionId === predictionId)
        .map((s) => s.uid),
    );
  }

  undo(): boolean {
    const done = this.history.undo(this);
    if (done) this.afterHistoryMove();
    return done;
  }

  redo(): boolean {
    const done = this.history.redo(this);
    if (done) this.afterHistoryMove();
    return done;
  }

  // ---- view state (not undoable, not saved) -------------------------------------------------

  /**
   * Select a shape: "picked" when the person clicked it or chose it in the list, "drawn" when the
   * canvas selects a shape the person just drew (a class chosen then is for the next shape).
   */
  select(uid: number | null, how: "picked" | "drawn" = "picked"): void {
    if (uid !== null && !this.byUid.has(uid)) uid = null;
    const picked = uid !== null && how === "picked";
    const moved = uid !== this.selectedUid;
    if (!moved && picked === this.selectionPicked) return;
    this.selectionPicked = picked;
    if (moved) {
      this.selectedUid = uid;
      this.attributeFocus = 0;
    }
    this.emit("selection");
  }

  setHidden(uids: number[], hidden: boolean): void {
    for (const uid of uids) {
      const shape = this.byUid.get(uid);
      if (shape) shape.hidden = hidden;
    }
    this.emit("visibility");
  }

  setLocked(uids: number[], locked: boolean): void {
    for (const uid of uids) {
      const shape = this.byUid.get(uid);
      if (shape) shape.locked = locked;
    }
    this.emit("visibility");
  }

  /** Tab / Shift+Tab: move the attribute focus of the selected shape, wrapping around. */
  cycleAttributeFocus(step: number): void {
    const count = this.attributeDefs(this.selected).length;
    if (count === 0) return;
    this.attributeFocus = (((this.attributeFocus + step) % count) + count) % count;
    this.emit("selection");
  }

  /** [ / ]: step the focused attribute of the selected shape through its options. */
  cycleAttributeValue(step: number): void {
    const shape = this.selected;
    const def = this.attributeDefs(shape)[this.attributeFocus];
    if (!shape || !def || def.options.length === 0) return;
    const current = def.options.indexOf(shape.attributes[def.name] ?? def.default);
    const n = def.options.length;
    const next = current < 0 ? 0 : (((current + step) % n) + n) % n;
    this.setAttribute(shape.uid, def.name, def.options[next]);
  }

  attributeDefs(shape: Shape | undefined) {
    return shape ? (this.labelById.get(shape.label)?.attributes ?? []) : [];
  }

  /** Attribute values for a shape of `label`, keeping valid values from `keep`. */
  defaultAttributes(label: number, keep: Record<string, string> = {}): Record<string, string> {
    const values: Record<string, string> = {};
    for (const def of this.labelById.get(label)?.attributes ?? []) {
      const kept = keep[def.name];
      values[def.name] =
        kept !== undefined && def.options.includes(kept) ? kept : def.default || def.options[0] || "";
    }
    return values;
  }

  // ---- internals, used by commands ----------------------------------------------------------

  private execute(command: DocCommand): void {
    command.apply(this);
    this.history.push(command);
    this.touch("shapes");
    this.emit("history");
  }

  private afterHistoryMove(): void {
    if (this.selectedUid !== null && !this.byUid.has(this.selectedUid)) this.select(null);
    this.touch("shapes");
    this.emit("history");
  }

  private create(json: ShapeJSON, proposal: Shape["proposal"]): Shape {
    const points = json.type === "box" && json.points.length === 2
      ? normalizeBox(json.points[0], json.points[1])
      : clonePoints(json.points);
    const shape: Shape = {
      uid: this.nextUid++,
      type: json.type,
      points,
      label: json.label,
      attributes: { ...(json.attributes ?? {}) },
      proposal,
      hidden: false,
      locked: false,
      bbox: bboxOf(points),
    };
    if (json.score !== undefined && json.score !== null) shape.score = json.score;
    if (json.id !== undefined && json.id !== null) shape.id = json.id;
    return shape;
  }

  private insert(shape: Shape, index: number): void {
    this.shapes.splice(Math.min(index, this.shapes.length), 0, shape);
    this.byUid.set(shape.uid, shape);
  }

  private detach(shape: Shape): void {
    const index = this.shapes.indexOf(shape);
    if (index >= 0) this.shapes.splice(index, 1);
    this.byUid.delete(shape.uid);
    if (this.selectedUid === shape.uid) {
      this.selectedUid = null;
      this.selectionPicked = false;
      this.emit("selection");
    }
  }

  private setPoints(shape: Shape, points: Point[]): void {
    shape.points = shape.type === "box" ? normalizeBox(points[0], points[1]) : clonePoints(points);
    shape.bbox = bboxOf(shape.points);
  }

  private assign(shape: Shape, value: { label: number; attributes: Record<string, string> }): void {
    shape.label = value.label;
    shape.attributes = { ...value.attributes };
    this.emit("selection");
  }

  private touch(kind: ChangeKind): void {
    this.revision++;
    this.emit(kind);
  }

  private emit(kind: ChangeKind): void {
    for (const listener of this.listeners) listener(kind);
  }
}

/**
 * A new shape's id: it stays with the shape through every saved version, so review can tell a
 * changed shape from a removed and an added one (model/versiondiff).
 */
export function newShapeId(): string {
  const random = globalThis.crypto?.randomUUID?.().replace(/-/g, "").slice(0, 12);
  return `s${random ?? Math.random().toString(36).slice(2, 14)}${Date.now().toString(36)}`;
}

/**
 * Every shape's number as the shape list shows it (from 1): the annotation's shapes and the
 * proposals are numbered apart, in list order. One pass, for drawing many numbers at once.
 */
export function shapeNumbers(shapes: readonly Shape[]): Map<number, number> {
  const numbers = new Map<number, number>();
  let accepted = 0;
  let proposed = 0;
  for (const shape of shapes) numbers.set(shape.uid, shape.proposal ? ++proposed : ++accepted);
  return numbers;
}

/** What makes an accepted proposal "changed": its geometry, class or attributes (not the score). */
export function signature(shape: Shape): string {
  const attributes = Object.keys(shape.attributes)
    .sort()
    .map((name) => [name, shape.attributes[name]]);
  return JSON.stringify([shape.type, shape.points.map(roundPoint), shape.label, attributes]);
}

export function toJSON(shape: Shape): ShapeJSON {
  const json: ShapeJSON = {
    type: shape.type,
    points: shape.points.map(roundPoint),
    label: shape.label,
    attributes: { ...shape.attributes },
  };
  if (shape.score !== undefined) json.score = shape.score;
  if (shape.id !== undefined) json.id = shape.id;
  return json;
}
