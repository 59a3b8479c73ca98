// Which sources the dashboard build in ../mes_kernel/static/web was made from, so the e2e run reuses
// the build `make setup` made instead of building again (about two minutes) when nothing changed.
//
// `node scripts/build-stamp.mjs write` (the last step of `npm run build`) records two SHA-256 digests
// in node_modules/.cache/mes-web-build.json (outside the build, so no web server ever serves it): one
// over the sources (every file of web/ but node_modules, e2e, docs and tsc's state — package-lock.json
// included, so another dependency set counts as a change) and one over the build output. The build is
// fresh when both still match: an edited source or a touched, deleted or half-written output means
// building again.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const WEB_DIR = resolve(fileURLToPath(new URL("..", import.meta.url)));
export const OUT_DIR = resolve(WEB_DIR, "..", "mes_kernel", "static", "web");
export const STAMP = join(WEB_DIR, "node_modules", ".cache", "mes-web-build.json");

/**
 * Where the stamp looks: `webDir` (the sources), `outDir` (the build) and `stamp` (the record file).
 * Every function below takes them, defaulting to this project's; the tests pass a temp dir's.
 */
export const PLACES = Object.freeze({ webDir: WEB_DIR, outDir: OUT_DIR, stamp: STAMP });

const SKIP_DIRS = new Set(["node_modules", "e2e", "dist", ".git"]);
const SKIP_FILE = (name) => name.endsWith(".tsbuildinfo") || name.endsWith(".md") || name === ".gitignore";

function files(root, skipDir = () => false) {
  const found = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (!skipDir(entry.name)) walk(path);
      } else if (entry.isFile()) {
        found.push(path);
      }
    }
  };
  walk(root);
  return found.sort();
}

/** One digest over the relative path and content of each file: a rename, an edit, an added or removed file all change it. */
function digest(root, paths) {
  const hash = createHash("sha256");
  for (const path of paths) {
    hash.update(relative(root, path)).update("\0").update(readFileSync(path)).update("\0");
  }
  return hash.digest("hex");
}

/** SHA-256 (hex) over the sources in `webDir`. */
export function sourceDigest({ webDir } = PLACES) {
  return digest(webDir, files(webDir, (name) => SKIP_DIRS.has(name)).filter((p) => !SKIP_FILE(p)));
}

/** SHA-256 (hex) over every file of `outDir`, or null when it holds no build (no index.html). */
export function outputDigest({ outDir } = PLACES) {
  if (!existsSync(join(outDir, "index.html"))) return null;
  return digest(outDir, files(outDir));
}

/** Record the digests of the sources and the build as they are now in the `stamp` file. */
export function writeStamp(places = PLACES) {
  mkdirSync(dirname(places.stamp), { recursive: true });
  writeFileSync(places.stamp, JSON.stringify({ sources: sourceDigest(places), output: outputDigest(places) }, null, 2) + "\n");
}

/** Why the build must be made again, or null when the one in `outDir` was made from the sources as they are now. */
export function staleReason(places = PLACES) {
  if (!existsSync(places.stamp)) return "no record of a previous build";
  let stamp;
  try {
    stamp = JSON.parse(readFileSync(places.stamp, "utf8"));
  } catch {
    return "the record of the previous build is unreadable";
  }
  if (stamp.sources !== sourceDigest(places)) return "the sources changed since the last build";
  const output = outputDigest(places);
  if (output === null) return "there is no build";
  if (stamp.output !== output) return "the build output changed since it was made";
  return null;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const command = process.argv[2];
  if (command === "write") {
    writeStamp();
  } else if (command === "check") {
    const reason = staleReason();
    console.log(reason ?? "fresh");
    process.exit(reason ? 1 : 0);
  } else {
    console.error("usage: node scripts/build-stamp.mjs write|check");
    process.exit(2);
  }
}
