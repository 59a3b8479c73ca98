// Starts a real NeuroHub MES kernel for the end-to-end test: fresh SQLite in a temp dir, users, free port.
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const WEB_DIR = resolve(fileURLToPath(new URL("..", import.meta.url)));
export const REPO = resolve(WEB_DIR, "..");
export const MES = process.env.E2E_MES ?? join(REPO, ".venv", "bin", "mes");

/** A TCP port nobody listens on right now (the kernel binds it a moment later). */
export function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

function run(args, env, cwd, input) {
  const result = spawnSync(MES, args, { env, cwd, input, encoding: "utf8", timeout: 60_000 });
  if (result.status !== 0) {
    throw new Error(`mes ${args.join(" ")} failed (${result.status ?? result.signal}):\n${result.stdout}\n${result.stderr}`);
  }
  return result.stdout;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Start `mes serve` on 127.0.0.1 with its own database, files dir and secret, after creating the
 * given users. Returns the base URL, the log path and `stop()` (which also removes the temp dir).
 */
export async function startKernel({ users }) {
  if (!existsSync(MES)) throw new Error(`the kernel CLI is missing at ${MES}: run \`make setup\` first`);
  const dir = mkdtempSync(join(tmpdir(), "mes-web-e2e-"));
  const env = {
    ...process.env,
    DATABASE_URL: `sqlite+aiosqlite:///${join(dir, "mes.db")}`,
    FILES_DIR: join(dir, "files"),
    SECRET_KEY: randomBytes(32).toString("hex"),
    ENVIRONMENT: "test",
    LOG_LEVEL: "WARNING",
    // the tests register stations that never report: a slow run must not see their silence alerts
    // (raised STATION_SILENT_AFTER_SECONDS after registration) among the alerts it counts
    STATION_SILENT_AFTER_SECONDS: "3600",
  };
  delete env.REDIS_URL;
  // cwd is the temp dir so a developer's .env in the repository is not read.
  run(["db", "upgrade"], env, dir);
  for (const user of users) {
    run(["user", "create", user.username, "--role", user.role, "--password-stdin"], env, dir, `${user.password}\n`);
  }
  const port = await freePort();
  const logPath = join(dir, "serve.log");
  const log = openSync(logPath, "a");
  const child = spawn(MES, ["serve", "--host", "127.0.0.1", "--port", String(port), "--no-migrate"], {
    env, cwd: dir, detached: true, stdio: ["ignore", log, log],
  });
  let exited = null;
  child.on("exit", (code, signal) => {
    exited = { code, signal };
  });
  const baseUrl = `http://127.0.0.1:${port}`;

  async function stop() {
    if (exited === null) {
      try {
        process.kill(-child.pid, "SIGTERM");
      } catch {
        // already gone
      }
      for (let i = 0; i < 100 && exited === null; i += 1) await sleep(100);
      if (exited === null) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    }
    if (!process.env.E2E_KEEP) rmSync(dir, { recursive: true, force: true });
  }

  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited !== null) {
      const text = readFileSync(logPath, "utf8");
      await stop();
      throw new Error(`mes serve exited (${JSON.stringify(exited)}) before it answered:\n${text}`);
    }
    try {
      const res = await fetch(`${baseUrl}/api/v1/health/readiness`, { signal: AbortSignal.timeout(2000) });
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      const text = readFileSync(logPath, "utf8");
      await stop();
      throw new Error(`mes serve did not become ready within 60 s:\n${text}`);
    }
    await sleep(250);
  }
  return { baseUrl, dir, logPath, stop, exited: () => exited, log: () => readFileSync(logPath, "utf8") };
}

/** A small JSON client for seeding data through the real API. */
export async function apiClient(baseUrl, username, password) {
  const login = await fetch(`${baseUrl}/api/v1/auth/login`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ username, password }),
  });
  if (!login.ok) throw new Error(`login as ${username} failed: ${login.status} ${await login.text()}`);
  const { access_token: token } = await login.json();
  return async function call(method, path, body) {
    const res = await fetch(`${baseUrl}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path} → ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
}
