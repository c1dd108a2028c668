// What the browser tests share: a real helios-gateway in embedded mode (its worker spawned on
// demand, HOME in a temporary directory), Debian's Chromium driven by playwright-core, and a
// screenshot of every open page when a test fails.

import { spawn, spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { chmodSync, chownSync, lchownSync, mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, existsSync, statSync,
  writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join, resolve } from "node:path";
import { once } from "node:events";

const env = process.env;
const here = new URL(".", import.meta.url).pathname;
const source = resolve(here, "../..");
export const buildDir = env.HELIOS_BUILD_DIR || join(source, "build");
const gatewayBin = env.HELIOS_GATEWAY || join(buildDir, "gateway", "helios-gateway");
const workerBin = env.HELIOS_WORKER || join(buildDir, "worker", "helios-worker");
const webRoot = env.HELIOS_WEB_ROOT || join(buildDir, "web", "dist");
const depsDir = env.HELIOS_BROWSER_DEPS || join(buildDir, "browser-deps");
const chromiumBin = env.HELIOS_CHROMIUM || "/usr/bin/chromium";
export const artifactsDir = env.HELIOS_ARTIFACTS || join(buildDir, "meson-logs", "browser");

function loadPlaywright() {
  const require = createRequire(join(depsDir, "package.json"));
  try {
    return require("playwright-core");
  } catch (error) {
    throw new Error(`playwright-core is not installed in ${depsDir} (tools/setup installs it): ${error.message}`);
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// helios-gateway refuses to run as root: tests run as root start it as this account of their own
// (made once and kept, shared with the Python tests), which owns the gateway's directory.
const asRoot = process.getuid() === 0;
const testAccount = "helios-e2e-gw";

function account() {
  if (!asRoot) return { name: userInfo().username, uid: process.getuid(), gid: process.getgid() };
  let id = spawnSync("id", ["-u", testAccount], { encoding: "utf8" });
  if (id.status !== 0) {
    spawnSync("useradd", ["--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/bin/sh", testAccount]);
    id = spawnSync("id", ["-u", testAccount], { encoding: "utf8" });
  }
  const gid = spawnSync("id", ["-g", testAccount], { encoding: "utf8" });
  return { name: testAccount, uid: Number(id.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/** The account the gateways of these tests serve. */
export const servedUser = account();

/** Give path (and what is in it) to the served account, so its worker may change it. */
export function ownToGateway(path) {
  if (!asRoot) return;
  lchownSync(path, servedUser.uid, servedUser.gid);
  if (statSync(path).isDirectory())
    for (const name of readdirSync(path)) ownToGateway(join(path, name));
}

/** Poll `fn` until it returns a truthy value. */
export async function until(fn, { timeout = 10_000, interval = 50, what = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${last})`);
    await sleep(interval);
  }
}

export class Gateway {
  constructor(options = {}) {
    this.base = mkdtempSync(join(tmpdir(), "helios-browser-"));
    this.home = join(this.base, "home");
    this.state = join(this.base, "state");
    this.runtime = join(this.base, "run");
    this.logPath = join(this.base, "gateway.log");
    this.args = options.args || [];
    mkdirSync(this.home, { recursive: true });
    mkdirSync(this.state, { recursive: true });
  }

  async start() {
    for (const [what, path] of [["helios-gateway", gatewayBin], ["helios-worker", workerBin], ["the web bundle", join(webRoot, "index.html")]])
      if (!existsSync(path)) throw new Error(`${what} not found at ${path}`);
    const childEnv = { ...env, HOME: this.home, XDG_STATE_HOME: this.state, SHELL: "/bin/bash", PS1: "$ " };
    delete childEnv.LISTEN_FDS;
    delete childEnv.LISTEN_PID;
    const argv = [gatewayBin, "--listen", "127.0.0.1:0", "--web-root", webRoot, "--worker", workerBin,
      "--runtime-dir", this.runtime, "--config", "/dev/null", ...this.args];
    if (asRoot) {
      ownToGateway(this.base);
      // The temporary directory's parents only need to be passable.
      for (let d = join(this.base, ".."); d !== "/"; d = join(d, "..")) {
        const mode = statSync(d).mode & 0o7777;
        if (!(mode & 0o001)) chmodSync(d, mode | 0o001);
      }
      argv.unshift("setpriv", `--reuid=${servedUser.uid}`, `--regid=${servedUser.gid}`, "--clear-groups");
    }
    this.proc = spawn(
      argv[0],
      argv.slice(1),
      { env: childEnv, stdio: ["ignore", "pipe", "pipe"], detached: true },
    );
    this.log = "";
    this.proc.stderr.on("data", (d) => (this.log += d));
    // The token login prints its URL (with the token) on standard output; every login method logs
    // "Serving USER on URL" on standard error.
    let out = "";
    const line = await new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => reject(new Error(`helios-gateway printed no URL: ${this.log}`)), 10_000);
      const check = () => {
        const nl = out.indexOf("\n");
        const serving = /Serving \S+ on (http\S+?)\.?\n/.exec(this.log);
        if (nl >= 0 || (serving && !this.args.every((a) => a !== "file" && a !== "pam"))) {
          clearTimeout(timer);
          resolvePromise(nl >= 0 ? out.slice(0, nl) : serving[1]);
        }
      };
      this.proc.stdout.on("data", (d) => {
        out += d;
        check();
      });
      this.proc.stderr.on("data", check);
      this.proc.on("exit", (code) => reject(new Error(`helios-gateway exited (${code}): ${this.log}`)));
    }).catch(async (error) => {
      // Nothing of a gateway that did not come up is left running.
      await this.stop({ keepLog: true });
      throw error;
    });
    this.url = line.slice(line.indexOf("http"));
    this.origin = new URL(this.url).origin;
    this.token = new URL(this.url).hash.replace(/^#token=/, "") || null;
    return this;
  }

  async stop({ keepLog = false } = {}) {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill("SIGTERM");
      const timer = setTimeout(() => this.proc.kill("SIGKILL"), 10_000);
      await once(this.proc, "exit");
      clearTimeout(timer);
    }
    // The worker and its terminals outlive the gateway by design; end what this test started.
    for (const pid of this.ownProcesses()) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    if (keepLog) {
      mkdirSync(artifactsDir, { recursive: true });
      writeFileSync(join(artifactsDir, `gateway-${this.proc?.pid}.log`), this.log);
    }
    rmSync(this.base, { recursive: true, force: true });
  }

  /** Pids of the processes this gateway started: its worker and the shells in its terminals, all
   * of which carry this test's HOME. */
  ownProcesses() {
    const pids = [];
    for (const name of readdirSync("/proc")) {
      if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
      try {
        if (readFileSync(`/proc/${name}/environ`, "utf8").includes(`HOME=${this.home}\0`)) pids.push(Number(name));
      } catch {
        // gone, or not ours to read
      }
    }
    return pids;
  }

  /** Pids of helios-worker processes serving this gateway. */
  workerPids() {
    return this.ownProcesses().filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "helios-worker";
      } catch {
        return false;
      }
    });
  }

  file(relative) {
    return join(this.home, relative);
  }
}

let browserPromise = null;

/** One Chromium for the whole run; each test takes fresh contexts from it (own cookies, own storage). */
export function browser() {
  if (!browserPromise) {
    const { chromium } = loadPlaywright();
    if (!existsSync(chromiumBin)) throw new Error(`${chromiumBin} not found (tools/setup installs Debian's chromium)`);
    // playwright-core gives the browser a fresh temporary profile (--user-data-dir) and removes it on close.
    browserPromise = chromium.launch({
      executablePath: chromiumBin,
      headless: true,
      args: [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
      ],
    });
  }
  return browserPromise;
}

export async function closeBrowser() {
  if (!browserPromise) return;
  const b = await browserPromise;
  browserPromise = null;
  await b.close();
}

/** Run `body` with fresh browser contexts; if it throws, save a screenshot of every page it opened
 * (and the gateway's log) into the artifacts directory before failing. */
export async function withBrowser(name, gateway, body) {
  let b;
  try {
    b = await browser();
  } catch (error) {
    // No browser, no test: but the gateway the test started must not outlive it.
    if (gateway) await gateway.stop({ keepLog: true });
    throw error;
  }
  const contexts = [];
  const consoleLog = [];
  const newPage = async (context) => {
    if (!context) {
      // Tests over TLS use a self-signed certificate made for the test.
      context = await b.newContext({ viewport: { width: 1280, height: 800 }, ignoreHTTPSErrors: true });
      contexts.push(context);
    }
    const page = await context.newPage();
    page.on("console", (m) => consoleLog.push(`[${m.type()}] ${m.text()}`));
    page.on("pageerror", (e) => consoleLog.push(`[pageerror] ${e.stack || e.message}`));
    return page;
  };
  let failed = false;
  try {
    await body({ newPage, consoleLog });
  } catch (error) {
    failed = true;
    mkdirSync(artifactsDir, { recursive: true });
    const slug = name.replace(/[^A-Za-z0-9]+/g, "-").replace(/^-|-$/g, "");
    let n = 0;
    for (const context of contexts)
      for (const page of context.pages()) {
        const path = join(artifactsDir, `${slug}-${++n}.png`);
        await page.screenshot({ path, fullPage: true }).catch(() => undefined);
        error.message += `\n  screenshot: ${path}`;
      }
    writeFileSync(join(artifactsDir, `${slug}-console.log`), consoleLog.join("\n") + "\n");
    throw error;
  } finally {
    for (const context of contexts) await context.close().catch(() => undefined);
    if (gateway) {
      if (failed) gateway.keepLogAs = name;
      await gateway.stop({ keepLog: failed });
    }
  }
}
