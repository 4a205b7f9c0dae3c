// A tiny element builder: text is always set as text (run data is never parsed as HTML).

type Attrs = Record<string, string | number | boolean | undefined | ((ev: Event) => void)>;
type Child = Node | string | number | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]):
  HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (typeof v === "function") el.addEventListener(k.replace(/^on/, ""), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

const SVG = "http://www.w3.org/2000/svg";

export function s(tag: string, attrs: Record<string, string | number> = {}, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  append(el, children);
  return el;
}

function append(el: Element, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

let toastTimer = 0;

export function toast(message: string): void {
  const box = document.getElementById("toast");
  if (!box) return;
  box.textContent = message;
  window.clearTimeout(toastTimer);
  toastTimer = window.setTimeout(() => { box.textContent = ""; }, 6000);
}

export const fmtUsd = (v: number): string => `$${v.toFixed(v < 0.01 && v > 0 ? 5 : 4)}`;
export const fmtS = (v: number): string => (v >= 90 ? `${(v / 60).toFixed(1)} min` : `${v.toFixed(1)} s`);
