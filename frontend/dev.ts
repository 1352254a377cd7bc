// The dev harness: `npm run dev` and open /dev.html. A synthetic image, synthetic shapes and a
// fake server in the page, so every feature can be clicked without Django running.
import config from "./dev-config.json";
import zh from "./dev-strings.zh-Hans.json";
import { makeShapes } from "./scripts/synthetic-shapes.mjs";
import { mountWorkspace } from "./src/index";
import type { WorkspaceConfig } from "./src/types";

const params = new URLSearchParams(location.search);
const cfg = structuredClone(config) as unknown as WorkspaceConfig;
const shapeCount = Number(params.get("shapes") ?? 50);
const predictionCount = Number(params.get("predictions") ?? 8);
if (params.get("lang") === "zh") cfg.strings = zh;
if (params.get("mode") === "review") {
  cfg.mode = "review";
  cfg.task.status = "submitted";
  cfg.reviewComment = null;
}
const { width, height } = cfg.task;
cfg.annotation.shapes = makeShapes(shapeCount, width, height, cfg.project.labels, 1);
cfg.predictions[0].shapes = makeShapes(predictionCount, width, height, cfg.project.labels, 2, { scores: true });

function syntheticImage(w: number, h: number): Promise<string> {
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d")!;
  const gradient = ctx.createRadialGradient(w / 2, h / 2, 0, w / 2, h / 2, Math.max(w, h) / 1.4);
  gradient.addColorStop(0, "#4a4c50");
  gradient.addColorStop(1, "#1c1d20");
  ctx.fillStyle = gradient;
  ctx.fillRect(0, 0, w, h);
  ctx.globalAlpha = 0.08;
  for (let y = 0; y < h; y += 3) {
    ctx.fillStyle = (y * 7919) % 13 > 6 ? "#fff" : "#000";
    ctx.fillRect(0, y, w, 1);
  }
  ctx.globalAlpha = 1;
  ctx.strokeStyle = "#d8d8d8";
  ctx.lineWidth = 3;
  for (let i = 0; i < 20; i++) {
    const x = (i * 997) % w;
    const y = (i * 631) % h;
    ctx.beginPath();
    ctx.moveTo(x, y);
    ctx.lineTo(x + 300 * Math.cos(i), y + 300 * Math.sin(i));
    ctx.stroke();
  }
  return new Promise((resolve) => canvas.toBlob((blob) => resolve(URL.createObjectURL(blob!)), "image/png"));
}

let version = cfg.annotation.version ?? 0;
const fakeServer = async (url: string, init?: RequestInit): Promise<Response> => {
  await new Promise((r) => setTimeout(r, 250));
  const json = (status: number, body: unknown) =>
    new Response(body === null ? null : JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
  console.info("[fake server]", init?.method, url, init?.body ? JSON.parse(String(init.body)) : "");
  if (params.get("stale") && url === cfg.api.annotation) {
    return json(409, { error: { code: "stale", message: "This annotation changed since you opened it.", details: { version: version + 1 } } });
  }
  if (url === cfg.api.annotation) return json(200, { version: ++version, shapes: [], tags: [] });
  if (url === cfg.api.reserve) return params.get("next") ? json(200, { id: Number(params.get("next")) }) : json(204, null);
  if (url === cfg.api.release) return json(204, null);
  if (url === cfg.api.review) return json(201, { id: 1 });
  return json(404, { error: { code: "not_found", message: "Not found." } });
};

cfg.task.imageUrl = await syntheticImage(width, height);
const workspace = mountWorkspace(document.getElementById("workspace")!, cfg, {
  fetch: fakeServer,
  navigate: (url) => workspace.notify(`navigate → ${url}`, "success"),
});
const rotation = Number(params.get("rotation") ?? 0);
if (rotation) workspace.rotate(rotation / 90);
