// The plan DAG as SVG: one rounded box per task, colored by its live status, with arrows from dependencies.

import { s } from "./dom";
import { layout } from "./layout";
import type { Plan } from "./api";
import type { RunView } from "./reducer";
import { statusClass } from "./reducer";

export function dagSvg(plan: Plan, view: RunView): SVGElement {
  const l = layout(plan.tasks.map((t) => ({ id: t.id, deps: t.deps ?? [] })));
  const byId = new Map(plan.tasks.map((t) => [t.id, t]));
  const svg = s("svg", { viewBox: `0 0 ${l.width} ${l.height}`, width: l.width, height: l.height, role: "img",
    "aria-label": `plan with ${plan.tasks.length} tasks`, class: "dag" },
  s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7,
    markerHeight: 7, orient: "auto-start-reverse" }, s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }))));
  for (const e of l.edges) {
    svg.append(s("polyline", { points: e.points.map((p) => p.join(",")).join(" "), class: "edge",
      "marker-end": "url(#arrow)" }));
  }
  for (const n of l.nodes) {
    const t = view.tasks[n.id];
    const status = t?.status ?? "pending";
    const role = byId.get(n.id)?.role ?? "";
    const g = s("g", { class: `node ${statusClass(status)}`, "data-task": n.id, "data-status": status,
      transform: `translate(${n.x},${n.y})` },
    s("title", {}, `${n.id} (${role}): ${status}${t?.action ? ` — waits for consent on ${t.action}` : ""}`),
    s("rect", { width: n.w, height: n.h, rx: 8 }),
    s("text", { x: 10, y: 18, class: "tid" }, n.id.length > 18 ? `${n.id.slice(0, 17)}…` : n.id),
    s("text", { x: 10, y: 35, class: "tsub" }, `${role} · ${status}${t && t.attempts > 1 ? ` ×${t.attempts}` : ""}`));
    svg.append(g);
  }
  return svg;
}
