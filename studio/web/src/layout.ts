// A layered (Sugiyama-style) layout of a plan DAG, left to right: a task's column is the length of the longest
// dependency path leading to it, rows inside a column are ordered by the mean row of the task's dependencies
// (a few sweeps of the barycenter heuristic cut edge crossings), and edges run from a dependency's right side
// to the dependent's left side. Pure: the SVG drawing lives in dag.ts.

export interface LayoutInput {
  id: string;
  deps: readonly string[];
}

export interface PlacedNode {
  id: string;
  layer: number;
  order: number;
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface PlacedEdge {
  from: string;
  to: string;
  points: [number, number][];
}

export interface Layout {
  nodes: PlacedNode[];
  edges: PlacedEdge[];
  width: number;
  height: number;
}

export interface LayoutOptions {
  nodeW: number;
  nodeH: number;
  gapX: number;
  gapY: number;
  margin: number;
}

export const DEFAULTS: LayoutOptions = { nodeW: 150, nodeH: 44, gapX: 60, gapY: 18, margin: 12 };

/** Column of every node: 0 for roots, else 1 + the deepest dependency. Unknown dependencies and edges that
 * would close a cycle are ignored (a validated plan has neither; the drawing must not hang on a bad one). */
export function layers(nodes: readonly LayoutInput[]): Map<string, number> {
  const deps = new Map(nodes.map((n) => [n.id, n.deps.filter((d) => d !== n.id)]));
  const layer = new Map<string, number>();
  const visiting = new Set<string>();
  const visit = (id: string): number => {
    const known = layer.get(id);
    if (known !== undefined) return known;
    visiting.add(id);
    let deepest = -1;
    for (const d of deps.get(id) ?? []) {
      if (!deps.has(d) || visiting.has(d)) continue;
      deepest = Math.max(deepest, visit(d));
    }
    visiting.delete(id);
    layer.set(id, deepest + 1);
    return deepest + 1;
  };
  for (const n of nodes) visit(n.id);
  return layer;
}

export function layout(nodes: readonly LayoutInput[], options: Partial<LayoutOptions> = {}): Layout {
  const o = { ...DEFAULTS, ...options };
  const column = layers(nodes);
  const ids = new Set(nodes.map((n) => n.id));
  const columns: string[][] = [];
  for (const n of nodes) {
    const c = column.get(n.id) ?? 0;
    (columns[c] ??= []).push(n.id);
  }
  const depsOf = new Map(nodes.map((n) => [n.id, n.deps.filter((d) => ids.has(d) && d !== n.id)]));
  const row = new Map<string, number>();
  const renumber = (col: string[]): void => col.forEach((id, i) => row.set(id, i));
  columns.forEach(renumber);
  for (let sweep = 0; sweep < 4; sweep++) {
    for (let c = 1; c < columns.length; c++) {
      const col = columns[c] ?? [];
      const key = new Map(col.map((id, i) => {
        const ds = (depsOf.get(id) ?? []).map((d) => row.get(d) ?? 0);
        return [id, ds.length ? ds.reduce((a, b) => a + b, 0) / ds.length : i] as const;
      }));
      col.sort((a, b) => (key.get(a) ?? 0) - (key.get(b) ?? 0) || (row.get(a) ?? 0) - (row.get(b) ?? 0));
      renumber(col);
    }
  }
  const tallest = Math.max(0, ...columns.map((c) => c.length));
  const placed = new Map<string, PlacedNode>();
  columns.forEach((col, c) => {
    const offset = ((tallest - col.length) * (o.nodeH + o.gapY)) / 2; // center short columns
    col.forEach((id, r) => {
      placed.set(id, {
        id, layer: c, order: r, w: o.nodeW, h: o.nodeH,
        x: o.margin + c * (o.nodeW + o.gapX), y: o.margin + offset + r * (o.nodeH + o.gapY),
      });
    });
  });
  const edges: PlacedEdge[] = [];
  for (const n of nodes) {
    const to = placed.get(n.id);
    for (const d of depsOf.get(n.id) ?? []) {
      const from = placed.get(d);
      if (!from || !to || from.layer >= to.layer) continue; // a cycle's closing edge is not drawn
      const x1 = from.x + from.w, y1 = from.y + from.h / 2, x2 = to.x, y2 = to.y + to.h / 2;
      const mid = (x1 + x2) / 2;
      edges.push({ from: d, to: n.id, points: [[x1, y1], [mid, y1], [mid, y2], [x2, y2]] });
    }
  }
  return {
    nodes: nodes.map((n) => placed.get(n.id)).filter((p): p is PlacedNode => p !== undefined),
    edges,
    width: 2 * o.margin + Math.max(0, columns.length * (o.nodeW + o.gapX) - o.gapX),
    height: 2 * o.margin + Math.max(0, tallest * (o.nodeH + o.gapY) - o.gapY),
  };
}

/** Pairs of edges that cross (between the same two columns): what the ordering sweeps minimise. */
export function crossings(l: Layout): number {
  const pos = new Map(l.nodes.map((n) => [n.id, n]));
  let count = 0;
  for (let i = 0; i < l.edges.length; i++) {
    for (let j = i + 1; j < l.edges.length; j++) {
      const a = l.edges[i]!, b = l.edges[j]!;
      const [a1, a2, b1, b2] = [pos.get(a.from)!, pos.get(a.to)!, pos.get(b.from)!, pos.get(b.to)!];
      if (a1.layer !== b1.layer || a2.layer !== b2.layer || a2.layer - a1.layer !== 1) continue;
      if ((a1.order - b1.order) * (a2.order - b2.order) < 0) count++;
    }
  }
  return count;
}
