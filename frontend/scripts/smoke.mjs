// Renders the built bundle in headless Chromium, checks the page works, and writes screenshots to
// frontend/build/ (ignored by git). Usage: node scripts/smoke.mjs
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { launch } from "./browser.mjs";
import { startServer } from "./serve.mjs";

const out = join(dirname(fileURLToPath(import.meta.url)), "../build");
mkdirSync(out, { recursive: true });
const server = await startServer();
const base = `http://127.0.0.1:${server.address().port}`;
const browser = await launch();
const failures = [];
const check = (ok, what) => {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures.push(what);
};

try {
  const page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));

  await page.goto(`${base}/?shapes=50&predictions=8`);
  await page.waitForFunction(() => window.__defectlabWorkspace && !document.querySelector(".dl-loading"));
  await page.waitForTimeout(400);
  check(errors.length === 0, `no page errors ${errors.join(" | ")}`);
  const info = await page.evaluate(() => {
    const ws = window.__defectlabWorkspace;
    return { shapes: ws.getShapes().length, frames: ws.frameStats().frames, view: ws.getView() };
  });
  check(info.shapes === 50, `50 shapes loaded (${info.shapes})`);
  check(info.frames > 0, `frames rendered (${info.frames})`);
  const pixel = await page.evaluate(() => {
    const canvas = document.querySelector(".dl-layer-shapes");
    const ctx = canvas.getContext("2d");
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let painted = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
    return painted;
  });
  check(pixel > 1000, `shapes layer has painted pixels (${pixel})`);
  await page.screenshot({ path: join(out, "annotate-50.png") });

  // Mouse editing: move a box by dragging its inside, resize it by a corner, undo both.
  const stageBox = await page.locator(".dl-layer-overlay").boundingBox();
  const toPage = (p) =>
    page.evaluate(([x, y]) => window.__defectlabWorkspace.view.toScreen([x, y]), p).then(([x, y]) => [stageBox.x + x, stageBox.y + y]);
  await page.evaluate(() => {
    const ws = window.__defectlabWorkspace;
    ws.loadShapes([...ws.getShapes(), { type: "box", points: [[1800, 1300], [2200, 1600]], label: 2, attributes: { severity: "minor" } }]);
  });
  const last = () => page.evaluate(() => window.__defectlabWorkspace.getShapes().at(-1).points);
  const [cx, cy] = await toPage([2000, 1450]);
  await page.mouse.move(cx, cy);
  await page.mouse.down();
  await page.mouse.move(cx + 40, cy + 20, { steps: 4 });
  await page.mouse.up();
  const scale = await page.evaluate(() => window.__defectlabWorkspace.getView().scale);
  const moved = await last();
  check(Math.abs(moved[0][0] - (1800 + 40 / scale)) < 1 && Math.abs(moved[0][1] - (1300 + 20 / scale)) < 1, `drag moves the box (${JSON.stringify(moved)})`);
  const [hx, hy] = await toPage(moved[1]);
  await page.mouse.move(hx, hy);
  await page.mouse.down();
  await page.mouse.move(hx + 30, hy + 30, { steps: 3 });
  await page.mouse.up();
  const resized = await last();
  check(resized[1][0] > moved[1][0] + 20 / scale && resized[0][0] === moved[0][0], `corner handle resizes (${JSON.stringify(resized)})`);
  await page.keyboard.press("Control+z");
  await page.keyboard.press("Control+z");
  check(JSON.stringify(await last()) === JSON.stringify([[1800, 1300], [2200, 1600]]), "two undos restore the box");

  // Wheel zoom keeps the image point under the pointer; Space+drag pans.
  const anchorBefore = await page.evaluate(([x, y]) => window.__defectlabWorkspace.view.toImage([x, y]), [300, 200]);
  await page.mouse.move(stageBox.x + 300, stageBox.y + 200);
  await page.mouse.wheel(0, -300);
  await page.waitForTimeout(50);
  const anchorAfter = await page.evaluate(([x, y]) => window.__defectlabWorkspace.view.toImage([x, y]), [300, 200]);
  check(Math.hypot(anchorBefore[0] - anchorAfter[0], anchorBefore[1] - anchorAfter[1]) < 0.5, "wheel zooms at the pointer");
  const v0 = await page.evaluate(() => window.__defectlabWorkspace.getView());
  await page.keyboard.down("Space");
  await page.mouse.down();
  await page.mouse.move(stageBox.x + 380, stageBox.y + 260, { steps: 4 });
  await page.mouse.up();
  await page.keyboard.up("Space");
  const v1 = await page.evaluate(() => window.__defectlabWorkspace.getView());
  check(Math.abs(v1.x - v0.x - 80) < 1 && Math.abs(v1.y - v0.y - 60) < 1, "space + drag pans");
  await page.mouse.move(stageBox.x + 500, stageBox.y + 300);
  await page.mouse.down({ button: "middle" });
  await page.mouse.move(stageBox.x + 450, stageBox.y + 300, { steps: 3 });
  await page.mouse.up({ button: "middle" });
  const v2 = await page.evaluate(() => window.__defectlabWorkspace.getView());
  check(Math.abs(v2.x - v1.x + 50) < 1, "middle-button drag pans");
  await page.keyboard.press("f");
  await page.evaluate(() => {
    const ws = window.__defectlabWorkspace;
    ws.loadShapes(ws.getShapes().slice(0, 50));
  });

  // A pan within the layers' margin moves them instead of redrawing: the picture must be the same.
  const frame = () => page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  await page.evaluate(() => {
    const ws = window.__defectlabWorkspace;
    const v = ws.getView();
    ws.setView({ ...v, x: Math.round(v.x), y: Math.round(v.y) });
  });
  await page.waitForTimeout(400);
  await page.evaluate(() => {
    const ws = window.__defectlabWorkspace;
    const v = ws.getView();
    ws.setView({ ...v, x: v.x + 37, y: v.y - 21 });
  });
  await frame();
  const shifted = await page.evaluate(() => document.querySelector(".dl-layer-shapes").style.transform);
  const clip = { x: stageBox.x, y: stageBox.y, width: stageBox.width - 200, height: stageBox.height - 40 };
  const moved1 = await page.screenshot({ clip });
  await page.evaluate(() => window.__defectlabWorkspace.renderNow());
  await frame();
  const redrawn = await page.screenshot({ clip });
  check(shifted.includes("translate"), `a small pan shifts the layers (${shifted})`);
  const differing = await page.evaluate(
    async ([a, b]) => {
      const pixels = async (b64) => {
        const bitmap = await createImageBitmap(await (await fetch(`data:image/png;base64,${b64}`)).blob());
        const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
        const ctx = canvas.getContext("2d");
        ctx.drawImage(bitmap, 0, 0);
        return ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
      };
      const [pa, pb] = await Promise.all([pixels(a), pixels(b)]);
      let count = 0;
      for (let i = 0; i < pa.length; i++) if (Math.abs(pa[i] - pb[i]) > 8) count++;
      return count;
    },
    [moved1.toString("base64"), redrawn.toString("base64")],
  );
  check(differing === 0, `shifted layers look like a full redraw (${differing} values differ by more than 8)`);
  await page.keyboard.press("f");

  // Zoomed in on real pixels: outlines stay crisp and pixels are not smoothed.
  await page.evaluate(() => {
    const ws = window.__defectlabWorkspace;
    const [first] = ws.getShapes();
    const [[x, y]] = first.points;
    ws.setView({ scale: 2, x: 400 - 2 * x, y: 250 - 2 * y, rotation: 0 });
  });
  await page.waitForTimeout(150);
  await page.screenshot({ path: join(out, "zoomed.png") });
  await page.keyboard.press("f");

  // Select a shape through the list, draw a box, and open the shortcut overlay.
  await page.click(".dl-shape-row >> nth=2");
  await page.waitForTimeout(100);
  await page.screenshot({ path: join(out, "selected.png") });
  await page.keyboard.press("b");
  const stage = await page.locator(".dl-layer-overlay").boundingBox();
  await page.mouse.move(stage.x + 200, stage.y + 150);
  await page.mouse.down();
  await page.mouse.move(stage.x + 320, stage.y + 240, { steps: 5 });
  await page.mouse.up();
  const after = await page.evaluate(() => window.__defectlabWorkspace.getShapes().length);
  check(after === 51, `a box was drawn with the mouse (${after})`);
  await page.keyboard.press("]");
  await page.keyboard.press("Shift+Digit2");
  await page.waitForTimeout(100);
  await page.screenshot({ path: join(out, "drawn.png") });
  await page.keyboard.press("Shift+Slash");
  await page.waitForTimeout(100);
  await page.screenshot({ path: join(out, "help.png") });
  await page.keyboard.press("Escape");

  // Polygon with clicks and Enter, in a rotated view.
  await page.keyboard.press("r");
  await page.keyboard.press("p");
  for (const [x, y] of [[400, 300], [480, 310], [470, 400], [390, 380]]) await page.mouse.click(stage.x + x, stage.y + y);
  await page.keyboard.press("Enter");
  const polygons = await page.evaluate(() => window.__defectlabWorkspace.getShapes().filter((s) => s.type === "polygon").length);
  check(polygons > 0, `polygon closed with Enter in a rotated view (${polygons})`);
  await page.waitForTimeout(100);
  await page.screenshot({ path: join(out, "rotated.png") });

  // Submit: saves, then navigates to the next task's page.
  await page.keyboard.press("Control+Enter"); // proposals left: first press warns
  await page.keyboard.press("Control+Enter");
  await page.waitForURL(/\/tasks\/102\/annotate\//, { timeout: 5000 }).then(
    () => check(true, "submit navigated to the next task"),
    () => check(false, "submit navigated to the next task"),
  );

  for (const [width, height] of [[1024, 640], [1920, 1080]]) {
    const sized = await browser.newPage({ viewport: { width, height } });
    await sized.goto(`${base}/?shapes=50`);
    await sized.waitForFunction(() => window.__defectlabWorkspace && !document.querySelector(".dl-loading"));
    await sized.waitForTimeout(300);
    const overflow = await sized.evaluate(() => document.documentElement.scrollHeight - window.innerHeight);
    check(overflow <= 0, `${width}x${height}: the page does not scroll (${overflow})`);
    await sized.screenshot({ path: join(out, `size-${width}x${height}.png`) });
    await sized.close();
  }

  const zh = await browser.newPage({ viewport: { width: 1366, height: 768 } });
  await zh.goto(`${base}/?shapes=30&lang=zh&mode=review`);
  await zh.waitForFunction(() => window.__defectlabWorkspace && !document.querySelector(".dl-loading"));
  await zh.waitForTimeout(300);
  await zh.click(".dl-shape-row >> nth=0");
  await zh.waitForTimeout(100);
  await zh.screenshot({ path: join(out, "review-zh.png") });
} finally {
  await browser.close();
  server.close();
}
console.log(failures.length ? `${failures.length} checks failed` : "all checks passed");
process.exit(failures.length ? 1 : 0);
