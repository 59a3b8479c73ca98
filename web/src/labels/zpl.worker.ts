// The Web Worker that renders ZPL with zpl-renderer-js, so the page stays responsive while it works.
import { zplToBase64Async } from "zpl-renderer-js";
import type { RenderAnswer, RenderRequest } from "./zplRender";

self.onmessage = async (event: MessageEvent<RenderRequest>) => {
  const { id, zpl, widthMm, heightMm, dpmm } = event.data;
  let answer: RenderAnswer;
  try {
    answer = { id, png: await zplToBase64Async(zpl, widthMm, heightMm, dpmm) };
  } catch (error) {
    answer = { id, error: error instanceof Error ? error.message : String(error) };
  }
  self.postMessage(answer);
};
