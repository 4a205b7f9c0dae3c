// Naestro Studio: a hash-routed single page. Each page renders into <main> and returns a cleanup function
// (closing its SSE stream or timer) that runs when the route changes.

import "./style.css";
import { runsPage } from "./pages/runs";
import { runPage } from "./pages/run";
import { historyPage } from "./pages/history";
import { metricsPage } from "./pages/metrics";
import { newRunPage } from "./pages/newrun";
import { memoryPage } from "./pages/memory";

type Page = (main: HTMLElement, ...params: string[]) => () => void;

const ROUTES: [RegExp, Page][] = [
  [/^#\/runs\/([^/]+)\/history$/, historyPage],
  [/^#\/runs\/([^/]+)$/, runPage],
  [/^#\/new$/, newRunPage],
  [/^#\/metrics$/, metricsPage],
  [/^#\/memory$/, memoryPage],
  [/^(#\/runs)?$/, runsPage],
];

let cleanup: () => void = () => undefined;

function route(): void {
  cleanup();
  const main = document.getElementById("main")!;
  main.replaceChildren();
  const hash = location.hash || "#/runs";
  for (const [pattern, page] of ROUTES) {
    const m = pattern.exec(hash);
    if (m) {
      cleanup = page(main, ...m.slice(1).filter((x): x is string => x !== undefined).map(decodeURIComponent));
      break;
    }
  }
  for (const a of document.querySelectorAll<HTMLAnchorElement>("nav a")) {
    const here = hash.startsWith(a.getAttribute("href") ?? "") || (hash === "#/runs" && a.hash === "#/runs");
    if (here) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  main.focus({ preventScroll: true });
}

window.addEventListener("hashchange", route);
route();
