// Pan / zoom benchmark of the BUILT bundle in headless Chromium: 2,000 shapes on a 4000x3000
// image at 1366x768. Prints frames per second (from requestAnimationFrame), the longest gap
// between frames, and the canvas's own frameStats (render time per frame).
// Usage: node scripts/bench.mjs [shapes=2000] [seconds=4] [kind=mixed|boxes|polygons]
import { launch } from "./browser.mjs";
import { startServer } from "./serve.mjs";

const shapes = Number(process.argv[2] ?? 2000);
const seconds = Number(process.argv[3] ?? 4);
const kind = process.argv[4] ?? "mixed";
const server = await startServer();
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
  await page.goto(`http://127.0.0.1:${server.address().port}/?shapes=${shapes}&kind=${kind}&predictions=0&comment=0`);
  await page.waitForFunction(() => window.__defectlabWorkspace && !document.querySelector(".dl-loading"), null, { timeout: 60000 });
  await page.waitForTimeout(1500); // let the smaller image copies finish
  console.log(`${shapes} ${kind} shapes, 4000x3000 image, 1366x768 viewport`);
  const scenarios = [
    { name: "pan at fit", zoom: 1, rotation: 0 },
    { name: "zoom 1x..4x", zoom: 4, rotation: 0 },
    { name: "zoom out 0.5x..1x", zoom: 0.5, rotation: 0 },
    { name: "pan rotated 90°", zoom: 1.5, rotation: 90 },
  ];
  for (const scenario of scenarios) {
    const result = await page.evaluate(
      ({ scenario, seconds }) =>
        new Promise((resolve) => {
          const ws = window.__defectlabWorkspace;
          ws.fit();
          const base = ws.getView();
          ws.resetFrameStats();
          const start = performance.now();
          let last = start;
          let frames = 0;
          let worstGap = 0;
          let slow = 0;
          const step = (now) => {
            frames++;
            worstGap = Math.max(worstGap, now - last);
            if (now - last > 25) slow++;
            last = now;
            const t = (now - start) / 1000;
            const k = 1 + (scenario.zoom - 1) * (0.5 - 0.5 * Math.cos(t * 2));
            ws.setView({
              scale: base.scale * k,
              x: base.x + Math.sin(t * 3) * 300 - (k - 1) * 600,
              y: base.y + Math.cos(t * 2) * 200 - (k - 1) * 350,
              rotation: scenario.rotation,
            });
            if (now - start < seconds * 1000) requestAnimationFrame(step);
            else resolve({ fps: frames / ((now - start) / 1000), worstGap, slow, stats: ws.frameStats() });
          };
          requestAnimationFrame((now) => {
            last = now;
            requestAnimationFrame(step);
          });
        }),
      { scenario, seconds },
    );
    console.log(
      `${scenario.name.padEnd(20)} ${result.fps.toFixed(1).padStart(6)} fps  worst gap ${result.worstGap.toFixed(1).padStart(6)} ms  gaps>25ms ${result.slow}  ` +
        `renders ${result.stats.frames}  longest render ${result.stats.maxMs.toFixed(1)} ms  mean ${(result.stats.totalMs / Math.max(1, result.stats.frames)).toFixed(2)} ms`,
    );
  }
} finally {
  await browser.close();
  server.close();
}
