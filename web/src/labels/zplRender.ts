/// <reference types="vite/client" />
// ZPL to PNG in the browser with zpl-renderer-js (Zebrash compiled to WebAssembly), off the main thread.
//
// The library inlines its ~9 MB WebAssembly and starts it when imported, so it is never part of the
// main bundle: a Web Worker (its own chunk, loaded the first time a preview is asked for) imports it.
// The kernel's CSP allows the compilation with 'wasm-unsafe-eval' (WebAssembly only, no eval()).

/** Label size in printer dots and the print resolution, as a template declares them. */
export interface LabelSize {
  width: number;
  height: number;
  dpi: number;
}

export interface RenderRequest {
  id: number;
  zpl: string;
  widthMm: number;
  heightMm: number;
  dpmm: number;
}

export type RenderAnswer = { id: number; png: string } | { id: number; error: string };

/** The renderer's arguments for a label: millimetres and dots per millimetre (8 at 203 dpi, 12 at 300). */
export function renderArgs(size: LabelSize): { widthMm: number; heightMm: number; dpmm: number } {
  const dpmm = Math.max(6, Math.round((size.dpi || 203) / 25.4));
  // 4 × 2 inches when a template declares no size (no ^PW / ^LL)
  const width = size.width > 0 ? size.width : 4 * (size.dpi || 203);
  const height = size.height > 0 ? size.height : 2 * (size.dpi || 203);
  return { widthMm: width / dpmm, heightMm: height / dpmm, dpmm };
}

/** Text Zebrash's built-in fonts have no glyphs for (Hangul, CJK ideographs, kana): drawn as boxes. */
export function hasCjk(text: string): boolean {
  return /[\u1100-\u11ff\u2e80-\u30ff\u3130-\u318f\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]/.test(text);
}

let worker: Worker | null = null;
let nextId = 1;
const waiting = new Map<number, { resolve(png: string): void; reject(error: Error): void }>();

function theWorker(): Worker {
  if (worker) return worker;
  worker = new Worker(new URL("./zpl.worker.ts", import.meta.url), { type: "module" });
  worker.onmessage = (event: MessageEvent<RenderAnswer>) => {
    const answer = event.data;
    const pending = waiting.get(answer.id);
    if (!pending) return;
    waiting.delete(answer.id);
    if ("png" in answer) pending.resolve(answer.png);
    else pending.reject(new Error(answer.error));
  };
  worker.onerror = (event) => {
    // the worker could not start (its script or the WebAssembly refused): every waiting render fails
    const error = new Error(event.message || "the ZPL renderer could not start");
    for (const pending of waiting.values()) pending.reject(error);
    waiting.clear();
    worker?.terminate();
    worker = null;
  };
  return worker;
}

/**
 * Render one label (the first `^XA … ^XZ` of `zpl`) to a PNG `data:` URL.
 * Rejects with the renderer's message when it cannot draw the ZPL or cannot start.
 */
export async function renderZpl(zpl: string, size: LabelSize): Promise<string> {
  const args = renderArgs(size);
  // The unit tests (jsdom has no Worker) render on the test's thread; the build drops this branch, so
  // the 9 MB library is bundled once, in the worker's chunk.
  if (import.meta.env.MODE === "test") {
    const { zplToBase64Async } = await import("zpl-renderer-js");
    return `data:image/png;base64,${await zplToBase64Async(zpl, args.widthMm, args.heightMm, args.dpmm)}`;
  }
  if (typeof Worker === "undefined") throw new Error("this browser cannot run a Web Worker");
  const id = nextId++;
  const png = await new Promise<string>((resolve, reject) => {
    waiting.set(id, { resolve, reject });
    theWorker().postMessage({ id, zpl, ...args } satisfies RenderRequest);
  });
  return `data:image/png;base64,${png}`;
}
