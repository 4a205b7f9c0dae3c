// Plain SVG bar charts for the metrics page. `bars` is pure (scales values to pixel rects); `barChart` draws.

import { s } from "./dom";

export interface Bar { label: string; value: number }
export interface BarRect { label: string; value: number; x: number; y: number; w: number; h: number }

export function bars(data: readonly Bar[], width: number, height: number, gap = 6, maxW = Infinity): BarRect[] {
  if (!data.length) return [];
  const max = Math.max(...data.map((d) => d.value), 0) || 1;
  const w = Math.min(maxW, (width - gap * (data.length - 1)) / data.length);
  const left = (width - (w * data.length + gap * (data.length - 1))) / 2; // centered when bars are capped
  return data.map((d, i) => {
    const h = Math.max(0, (d.value / max) * height);
    return { label: d.label, value: d.value, x: left + i * (w + gap), y: height - h, w, h };
  });
}

export function barChart(title: string, data: readonly Bar[], format: (v: number) => string): SVGElement {
  const W = 420, H = 150, top = 18, bottom = 34;
  const rects = bars(data, W, H - top - bottom, 6, 72);
  return s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title, class: "chart" },
    s("title", {}, title),
    ...rects.flatMap((r) => [
      s("rect", { x: r.x, y: top + r.y, width: r.w, height: r.h, class: "bar" }),
      s("text", { x: r.x + r.w / 2, y: top + r.y - 4, "text-anchor": "middle", class: "val" }, format(r.value)),
      s("text", { x: r.x + r.w / 2, y: H - bottom + 14, "text-anchor": "middle", class: "lbl" },
        r.label.length > 14 ? `${r.label.slice(0, 13)}…` : r.label),
    ]),
    data.length ? null : s("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "lbl" }, "no data yet"));
}
