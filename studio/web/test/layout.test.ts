import { describe, expect, it } from "vitest";
import { crossings, layers, layout } from "../src/layout";

const plan = (edges: Record<string, string[]>) => Object.entries(edges).map(([id, deps]) => ({ id, deps }));

describe("layers", () => {
  it("puts a task one column right of its deepest dependency", () => {
    const l = layers(plan({ a: [], b: ["a"], c: ["a"], d: ["b", "c"], e: ["a", "d"] }));
    expect(Object.fromEntries(l)).toEqual({ a: 0, b: 1, c: 1, d: 2, e: 3 });
  });

  it("ignores unknown dependencies, self-loops and the edge that closes a cycle instead of hanging", () => {
    const l = layers(plan({ a: ["ghost", "a"], b: ["a", "c"], c: ["b"] }));
    expect(l.get("a")).toBe(0);
    // b is reached first: c's edge back to b closes the cycle and is dropped, so c is a root
    expect([l.get("b"), l.get("c")]).toEqual([1, 0]);
    expect(layout(plan({ a: ["ghost", "a"], b: ["a", "c"], c: ["b"] })).edges.map((e) => `${e.from}>${e.to}`).sort())
      .toEqual(["a>b", "c>b"]);
  });
});

describe("layout", () => {
  it("places every node once, left of its dependents, without overlaps", () => {
    const input = plan({ a: [], b: ["a"], c: ["a"], d: ["b"], e: ["c"], f: ["d", "e"], g: [] });
    const l = layout(input);
    expect(l.nodes.map((n) => n.id).sort()).toEqual(["a", "b", "c", "d", "e", "f", "g"]);
    const at = new Map(l.nodes.map((n) => [n.id, n]));
    for (const { id, deps } of input) for (const d of deps) expect(at.get(d)!.x + at.get(d)!.w).toBeLessThan(at.get(id)!.x);
    for (const a of l.nodes) for (const b of l.nodes) {
      if (a === b) continue;
      const apart = a.x + a.w <= b.x || b.x + b.w <= a.x || a.y + a.h <= b.y || b.y + b.h <= a.y;
      expect(apart, `${a.id} overlaps ${b.id}`).toBe(true);
    }
    for (const n of l.nodes) {
      expect(n.x + n.w).toBeLessThanOrEqual(l.width);
      expect(n.y + n.h).toBeLessThanOrEqual(l.height);
    }
  });

  it("draws one edge per known dependency, from the right side of the dependency to the left of the task", () => {
    const l = layout(plan({ a: [], b: ["a", "ghost"], c: ["a", "b"] }));
    expect(l.edges.map((e) => `${e.from}>${e.to}`).sort()).toEqual(["a>b", "a>c", "b>c"]);
    const at = new Map(l.nodes.map((n) => [n.id, n]));
    for (const e of l.edges) {
      expect(e.points[0]).toEqual([at.get(e.from)!.x + at.get(e.from)!.w, at.get(e.from)!.y + at.get(e.from)!.h / 2]);
      expect(e.points.at(-1)).toEqual([at.get(e.to)!.x, at.get(e.to)!.y + at.get(e.to)!.h / 2]);
    }
  });

  it("orders rows by the barycenter of dependencies, which untangles crossed edges", () => {
    // input order would cross both pairs: x1 depends on the second root, x2 on the first
    const l = layout(plan({ r1: [], r2: [], x1: ["r2"], x2: ["r1"] }));
    expect(crossings(l)).toBe(0);
    const at = new Map(l.nodes.map((n) => [n.id, n]));
    expect(at.get("x2")!.y).toBeLessThan(at.get("x1")!.y);
  });

  it("is empty for an empty plan", () => {
    expect(layout([])).toMatchObject({ nodes: [], edges: [] });
  });
});
