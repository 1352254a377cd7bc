// Serves the BUILT bundle in a page shaped like Django's workspace.html, with a fake API, on
// 127.0.0.1 only. Used by smoke.mjs and bench.mjs; run it alone to click around:
//   node scripts/serve.mjs            → http://127.0.0.1:5174/?shapes=50
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { syntheticPng } from "./png.mjs";
import { makeShapes } from "./synthetic-shapes.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const staticDir = join(here, "../../src/defectlab/web/static/defectlab");
const devConfig = JSON.parse(readFileSync(join(here, "../dev-config.json"), "utf8"));
const zh = JSON.parse(readFileSync(join(here, "../dev-strings.zh-Hans.json"), "utf8"));
const images = new Map();

function image(width, height) {
  const key = `${width}x${height}`;
  if (!images.has(key)) images.set(key, syntheticPng(width, height));
  return images.get(key);
}

function page(url, taskId) {
  const q = url.searchParams;
  const config = structuredClone(devConfig);
  const width = Number(q.get("w") ?? config.task.width);
  const height = Number(q.get("h") ?? config.task.height);
  config.task = { ...config.task, id: taskId, width, height, imageUrl: `/media/synthetic.png?w=${width}&h=${height}` };
  config.annotation.shapes = makeShapes(Number(q.get("shapes") ?? 50), width, height, config.project.labels, 1, {
    boxesOnly: q.get("kind") === "boxes",
    polygonsOnly: q.get("kind") === "polygons",
  });
  config.predictions[0].shapes = makeShapes(Number(q.get("predictions") ?? 8), width, height, config.project.labels, 2, { scores: true });
  if (q.get("lang") === "zh") config.strings = zh;
  if (q.get("mode") === "review") {
    config.mode = "review";
    config.task.status = "submitted";
    config.reviewComment = null;
  }
  if (q.get("comment") === "0") config.reviewComment = null;
  const json = JSON.stringify(config).replace(/</g, "\\u003c");
  return `<!doctype html>
<html lang="${q.get("lang") === "zh" ? "zh-Hans" : "en"}">
<head>
<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${config.task.fileName}</title>
<style>html,body{margin:0;background:#0d0f12;font-family:system-ui,sans-serif}
.site-header{display:flex;align-items:center;gap:16px;height:48px;padding:0 16px;background:#0b3d66;color:#fff}
.site-header a{color:#cfe3f5;text-decoration:none}</style>
<link rel="stylesheet" href="/static/defectlab/canvas.css">
<script type="module" src="/static/defectlab/canvas.js"></script>
</head>
<body>
<header class="site-header"><strong>DefectLab</strong><a href="#">Projects</a><a href="#">${config.project.name}</a></header>
<main><div id="workspace"></div></main>
<script type="application/json" id="workspace-config">${json}</script>
</body>
</html>`;
}

export function startServer(port = 0) {
  let version = devConfig.annotation.version;
  const server = createServer((req, res) => {
    const url = new URL(req.url, "http://127.0.0.1");
    const send = (status, type, body) => {
      res.writeHead(status, { "Content-Type": type, "Cache-Control": "no-store" });
      res.end(body);
    };
    const json = (status, body) => send(status, "application/json", body === null ? "" : JSON.stringify(body));
    if (req.method === "GET" && (url.pathname === "/" || /^\/tasks\/\d+\/annotate\/$/.test(url.pathname))) {
      const id = Number(/\d+/.exec(url.pathname)?.[0] ?? devConfig.task.id);
      return send(200, "text/html; charset=utf-8", page(url, id));
    }
    if (url.pathname.startsWith("/static/defectlab/")) {
      const name = url.pathname.slice("/static/defectlab/".length);
      if (!/^canvas\.(js|css)$/.test(name)) return send(404, "text/plain", "");
      const type = name.endsWith(".js") ? "text/javascript" : "text/css";
      return send(200, type, readFileSync(join(staticDir, name)));
    }
    if (url.pathname === "/favicon.ico") return send(204, "image/x-icon", "");
    if (url.pathname === "/media/synthetic.png") {
      return send(200, "image/png", image(Number(url.searchParams.get("w")), Number(url.searchParams.get("h"))));
    }
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      if (req.headers["x-csrftoken"] !== devConfig.csrfToken && req.method !== "GET") {
        return json(403, { error: { code: "csrf", message: "CSRF token missing." } });
      }
      if (req.method === "PUT" && url.pathname.endsWith("/annotation/")) return json(200, { version: ++version, ...JSON.parse(body) });
      if (req.method === "POST" && url.pathname.endsWith("/next-task/")) return json(200, { id: 102 });
      if (req.method === "POST" && url.pathname.endsWith("/release/")) return json(204, null);
      if (req.method === "POST" && url.pathname.endsWith("/review/")) return json(201, { id: 1 });
      return json(404, { error: { code: "not_found", message: "Not found." } });
    });
  });
  return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve(server)));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const server = await startServer(Number(process.env.PORT ?? 5174));
  console.log(`serving the built canvas on http://127.0.0.1:${server.address().port}/?shapes=50`);
}
