// The sensitivity page (web/sensitivity.py): the preview job's candidates drawn over the sample
// images, filtered again at every move of the two sliders, as a detection with those values
// keeps them (engine/decode.py): scores above the confidence, then greedy NMS per class (a box
// goes when its IoU with a better kept box of its class is above the threshold; exactly at it
// stays), best first, at most max_det per image. Arithmetic in float32 (Math.fround), as the
// engine's. Without this file the page still saves the sliders' values.
//
// window.DefectLabSensitivity.select is the filter alone (tests compare it with the engine's).
// #preview-images[data-drawn] holds the number of boxes drawn on all images.
(() => {
  "use strict";
  const f = Math.fround;
  const SVG = "http://www.w3.org/2000/svg";
  const COLORS = ["#e53935", "#1e88e5", "#43a047", "#fb8c00", "#8e24aa", "#00acc1", "#fdd835",
    "#6d4c41", "#d81b60", "#3949ab", "#7cb342", "#546e7a"];

  // IoU of boxes a and b ([x1, y1, x2, y2]) as the engine computes it (torchvision's formula).
  function overlap(a, b) {
    const width = Math.max(0, f(f(Math.min(f(a[2]), f(b[2]))) - f(Math.max(f(a[0]), f(b[0])))));
    const height = Math.max(0, f(f(Math.min(f(a[3]), f(b[3]))) - f(Math.max(f(a[1]), f(b[1])))));
    const inter = f(width * height);
    const areaA = f(f(f(a[2]) - f(a[0])) * f(f(a[3]) - f(a[1])));
    const areaB = f(f(f(b[2]) - f(b[0])) * f(f(b[3]) - f(b[1])));
    return f(inter / f(f(areaA + areaB) - inter));
  }

  // Indices of the candidates a detection keeps, best first. `suppress` false: the model's own
  // output needs no NMS (end-to-end models), its order is kept.
  function select(boxes, scores, classes, conf, iou, maxDet, suppress) {
    const floor = f(conf);
    const order = [];
    for (let i = 0; i < scores.length; i++) if (f(scores[i]) > floor) order.push(i);
    if (!suppress) return order.slice(0, maxDet);
    order.sort((a, b) => f(scores[b]) - f(scores[a]) || a - b);
    const threshold = f(iou);
    const kept = [];
    for (const i of order) {
      if (kept.length >= maxDet) break;
      let alive = true;
      for (const k of kept) {
        if (classes[k] === classes[i] && overlap(boxes[k], boxes[i]) > threshold) {
          alive = false;
          break;
        }
      }
      if (alive) kept.push(i);
    }
    return kept;
  }

  window.DefectLabSensitivity = { select, overlap };

  function start() {
    const source = document.getElementById("preview-data");
    const grid = document.getElementById("preview-images");
    const conf = document.getElementById("conf");
    const iou = document.getElementById("iou");
    if (!source || !grid || !conf || !iou) return;
    const data = JSON.parse(source.textContent);
    const figures = grid.querySelectorAll(".preview-image");
    const counts = document.querySelector("#class-counts tbody");
    const total = document.getElementById("total-count");
    const name = (k) => data.names[k] ?? `class ${k}`;

    function draw() {
      const c = Number(conf.value);
      const t = Number(iou.value);
      document.getElementById("conf-value").textContent = c.toFixed(2);
      document.getElementById("iou-value").textContent = t.toFixed(2);
      const perClass = new Map();
      let drawn = 0;
      data.images.forEach((image, index) => {
        const figure = figures[index];
        if (!figure) return;
        const svg = figure.querySelector("svg");
        const kept = select(image.boxes, image.scores, image.classes, c, t, data.max_det, data.nms);
        const rects = kept.map((i) => {
          const [x1, y1, x2, y2] = image.boxes[i];
          const k = image.classes[i];
          perClass.set(k, (perClass.get(k) || 0) + 1);
          const rect = document.createElementNS(SVG, "rect");
          rect.setAttribute("class", "preview-box");
          rect.setAttribute("x", x1);
          rect.setAttribute("y", y1);
          rect.setAttribute("width", Math.max(0, x2 - x1));
          rect.setAttribute("height", Math.max(0, y2 - y1));
          rect.setAttribute("stroke", COLORS[k % COLORS.length]);
          rect.setAttribute("vector-effect", "non-scaling-stroke");
          rect.dataset.class = String(k);
          const title = document.createElementNS(SVG, "title");
          title.textContent = `${name(k)} ${f(image.scores[i]).toFixed(2)}`;
          rect.append(title);
          return rect;
        });
        svg.replaceChildren(...rects);
        figure.querySelector(".preview-count").textContent = String(kept.length);
        drawn += kept.length;
      });
      grid.dataset.drawn = String(drawn);
      if (counts) {
        const rows = [...perClass.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
        counts.replaceChildren(...rows.map(([k, count]) => {
          const row = document.createElement("tr");
          const label = document.createElement("td");
          const swatch = document.createElement("span");
          swatch.className = "swatch";
          swatch.style.backgroundColor = COLORS[k % COLORS.length];
          label.append(swatch, name(k));
          const cell = document.createElement("td");
          cell.className = "n";
          cell.textContent = String(count);
          row.append(label, cell);
          return row;
        }));
      }
      if (total) total.textContent = String(drawn);
    }

    conf.addEventListener("input", draw);
    iou.addEventListener("input", draw);
    draw();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
