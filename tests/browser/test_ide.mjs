// The whole product through a real browser: Debian's Chromium, driven by playwright-core, against
// a real helios-gateway in embedded mode and the helios-worker it starts, with a temporary HOME.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { Gateway, closeBrowser, ownToGateway, servedUser, until, withBrowser, sleep } from "./harness.mjs";

after(closeBrowser);

// ---- page helpers ----

const editorContent = ".editor-view .cm-content";

async function openApp(page, g, { token = true } = {}) {
  await page.goto(token ? g.url : g.origin + "/");
  await connected(page);
}

async function connected(page, timeout = 15_000) {
  await page.locator('#link[data-state="connected"]').waitFor({ timeout });
}

async function openFromTree(page, g, relative) {
  const parts = relative.split("/");
  let path = g.home;
  for (const part of parts) {
    path += "/" + part;
    await page.locator(`.tree-row[data-path="${path}"]`).click();
  }
  await page.locator(`.tab.active[data-path="${path}"]`).waitFor();
  return path;
}

/** The document as lines on screen: each .cm-line's text, joined by LF (innerText would turn an
 * empty last line's <br> into an extra LF). */
async function editorText(page, scope = editorContent) {
  return page.locator(scope).evaluate((el) => [...el.querySelectorAll(".cm-line")].map((l) => l.textContent).join("\n"));
}

/** Put the cursor at the end of the document and type. */
async function typeAtEnd(page, text) {
  await page.locator(editorContent).click();
  await page.keyboard.press("Control+End");
  await page.keyboard.type(text);
}

async function terminalScreen(page) {
  return page.locator(".terminal-view:not([hidden]) .xterm-rows").innerText();
}

async function runInTerminal(page, command) {
  await page.locator(".terminal-view:not([hidden]) .xterm-screen").click();
  await page.keyboard.type(command);
  await page.keyboard.press("Enter");
}

function readHome(g, relative) {
  return readFileSync(join(g.home, relative), "utf8");
}

function writeHome(g, relative, content) {
  mkdirSync(join(g.home, relative, ".."), { recursive: true });
  writeFileSync(join(g.home, relative), content);
  ownToGateway(join(g.home, relative));
  ownToGateway(join(g.home, relative, ".."));
}

// ---- tests ----

test("a wrong token is refused; the right one logs in", async () => {
  const g = await new Gateway().start();
  await withBrowser("token login", g, async ({ newPage }) => {
    const page = await newPage();
    await page.goto(g.origin + "/");
    await page.locator("#login-token").waitFor();
    assert.equal(await page.locator("#login-user").isVisible(), false, "token login asks for no user name");

    await page.fill("#login-token", "not-the-token");
    await page.click("#login-submit");
    await until(async () => (await page.locator("#login-error").innerText()).includes("Wrong token"), { what: "refusal" });
    assert.equal(await page.locator("#workbench").isVisible(), false);
    const refused = await page.evaluate(() => fetch("api/session").then((r) => r.status));
    assert.equal(refused, 401, "no session after a wrong token");

    await page.fill("#login-token", g.token);
    await page.click("#login-submit");
    await connected(page);
    assert.equal(await page.locator("#user").innerText(), servedUser.name);

    // The token in the printed URL logs in by itself, and does not stay in the address bar.
    const second = await newPage();
    await second.goto(g.url);
    await connected(second);
    assert.equal(new URL(second.url()).hash, "");
  });
});

test("over TLS the page loads its assets by HTTP/1.1 (HTTP/2 is not offered) and works", async () => {
  const gBase = new Gateway();
  const cert = join(gBase.base, "cert.pem"), key = join(gBase.base, "key.pem");
  const made = spawnSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
    { encoding: "utf8" });
  assert.equal(made.status, 0, `openssl failed: ${made.stderr}`);
  writeFileSync(join(gBase.home, "over-tls.txt"), "secure\n");
  gBase.args = ["--cert", cert, "--key", key];
  const g = await gBase.start();
  assert.ok(g.url.startsWith("https://"), g.url);
  await withBrowser("tls", g, async ({ newPage }) => {
    const page = await newPage();
    await openApp(page, g);
    await page.getByText("over-tls.txt").first().waitFor();
    const versions = await page.evaluate(() =>
      performance.getEntriesByType("resource").filter((e) => e.name.includes("/assets/")).map((e) => e.nextHopProtocol));
    assert.ok(versions.length > 0 && versions.every((v) => v === "http/1.1"), `assets came by ${versions.join(", ")}`);
  });
});

test("a wrong password is refused; the right one logs in", async () => {
  const gBase = new Gateway();
  const users = join(gBase.base, "users");
  const r = spawnSync(join(process.env.HELIOS_BUILD_DIR || "build", "gateway", "helios-gateway"),
    ["passwd", "--users-file", users, servedUser.name], { input: "correct horse\n", encoding: "utf8" });
  assert.equal(r.status, 0, `helios-gateway passwd failed: ${r.stderr}`);
  gBase.args = ["--auth", "file", "--users-file", users];
  const g = await gBase.start();
  await withBrowser("password login", g, async ({ newPage }) => {
    const page = await newPage();
    await page.goto(g.origin + "/");
    await page.locator("#login-password").waitFor();
    assert.equal(await page.locator("#login-token").isVisible(), false);

    await page.fill("#login-user", servedUser.name);
    await page.fill("#login-password", "wrong horse");
    await page.click("#login-submit");
    await until(async () => (await page.locator("#login-error").innerText()).includes("Wrong user name or password"),
      { what: "refusal" });
    assert.equal(await page.locator("#workbench").isVisible(), false);

    await page.fill("#login-password", "correct horse");
    await page.click("#login-submit");
    await connected(page);

    // Logging out ends the session: the page is back at the login form, the WebSocket is refused.
    await page.click("#logout");
    await page.locator("#login-password").waitFor();
    assert.equal(await page.evaluate(() => fetch("api/session").then((r) => r.status)), 401);
  });
});

test("open from the tree, type, see the dirty marker, Ctrl+S writes the file", async () => {
  const g = await new Gateway().start();
  writeHome(g, "src/hello.txt", "first line\n");
  await withBrowser("edit and save", g, async ({ newPage }) => {
    const page = await newPage();
    await openApp(page, g);
    const path = await openFromTree(page, g, "src/hello.txt");
    assert.equal(await editorText(page), "first line\n");
    const tab = page.locator(`.tab[data-path="${path}"]`);
    assert.equal(await tab.evaluate((el) => el.classList.contains("dirty")), false);

    await typeAtEnd(page, "second line, with ünïcødé and 😀 emoji");
    await tab.and(page.locator(".dirty")).waitFor();
    assert.equal(readHome(g, "src/hello.txt"), "first line\n", "nothing is written before saving");

    await page.keyboard.press("Control+s");
    await until(() => readHome(g, "src/hello.txt") === "first line\nsecond line, with ünïcødé and 😀 emoji",
      { what: "the file on disk to hold the typed text" });
    await until(async () => !(await tab.evaluate((el) => el.classList.contains("dirty"))), { what: "the dirty marker to go" });
    assert.match(await page.locator("#message").innerText(), /Saved hello\.txt/);

    // Closing a tab with unsaved changes asks; "Don't Save" drops them and leaves the file alone.
    await typeAtEnd(page, " (never saved)");
    await tab.and(page.locator(".dirty")).waitFor();
    await tab.locator(".tab-close").click();
    const dialog = page.locator('.dialog[role="alertdialog"]');
    await dialog.waitFor();
    assert.match(await dialog.innerText(), /Save changes to hello\.txt\?/);
    await dialog.locator('[data-value="discard"]').click();
    await tab.waitFor({ state: "detached" });
    assert.equal(readHome(g, "src/hello.txt"), "first line\nsecond line, with ünïcødé and 😀 emoji");
    await page.locator(`.tree-row[data-path="${path}"]`).click();
    await page.locator(`.tab.active[data-path="${path}"]`).waitFor();
    assert.equal(await editorText(page), "first line\nsecond line, with ünïcødé and 😀 emoji");
  });
});

test("a file changed on disk under unsaved edits offers reload, keep mine and compare", async () => {
  const g = await new Gateway().start();
  writeHome(g, "notes.md", "# Notes\n");
  await withBrowser("disk conflict", g, async ({ newPage }) => {
    const page = await newPage();
    await openApp(page, g);
    const path = await openFromTree(page, g, "notes.md");
    await typeAtEnd(page, "mine");
    await page.locator(`.tab.dirty[data-path="${path}"]`).waitFor();

    writeHome(g, "notes.md", "# Notes\ntheirs\n");
    const banner = page.locator("#conflict-banner");
    await banner.waitFor({ state: "visible" });
    assert.match(await banner.innerText(), /changed on disk/);
    assert.equal(await editorText(page), "# Notes\nmine", "the user's text is kept until they choose");

    // Saving now is refused, not silently overwriting the other change.
    await page.keyboard.press("Control+s");
    await until(async () => /changed on disk/.test(await page.locator("#message").innerText()), { what: "save refused" });
    assert.equal(readHome(g, "notes.md"), "# Notes\ntheirs\n");

    // Compare: disk on the left, the buffer on the right.
    await banner.locator('[data-action="compare"]').click();
    const merge = page.locator(".merge-overlay");
    await merge.waitFor();
    const sides = [await editorText(page, ".merge-overlay .cm-merge-a .cm-content"),
      await editorText(page, ".merge-overlay .cm-merge-b .cm-content")];
    assert.deepEqual(sides, ["# Notes\ntheirs\n", "# Notes\nmine"]);
    await merge.locator('[data-action="close"]').click();

    // Keep mine overwrites the disk.
    await banner.locator('[data-action="keep"]').click();
    await until(() => readHome(g, "notes.md") === "# Notes\nmine", { what: "keep mine to write the buffer" });
    await banner.waitFor({ state: "hidden" });

    // Again, and this time reload from disk.
    await typeAtEnd(page, " again");
    await page.locator(`.tab.dirty[data-path="${path}"]`).waitFor();
    writeHome(g, "notes.md", "from outside\n");
    await banner.waitFor({ state: "visible" });
    await banner.locator('[data-action="reload"]').click();
    await until(async () => (await editorText(page)) === "from outside\n", { what: "the editor to show the disk" });
    await banner.waitFor({ state: "hidden" });
    await until(async () => !(await page.locator(`.tab[data-path="${path}"]`).evaluate((el) => el.classList.contains("dirty"))),
      { what: "clean after reload" });

    // A file made from outside shows up in the explorer by itself.
    writeHome(g, "made-outside.txt", "x");
    await page.locator(`.tree-row[data-path="${g.home}/made-outside.txt"]`).waitFor();
  });
});

test("a terminal runs a command; a reload finds the same terminal, scrollback and unsaved edit", async () => {
  const g = await new Gateway().start();
  writeHome(g, "draft.txt", "kept:");
  await withBrowser("terminal and reload", g, async ({ newPage }) => {
    const page = await newPage();
    await openApp(page, g);
    const path = await openFromTree(page, g, "draft.txt");
    await typeAtEnd(page, " unsaved words");
    await page.locator(`.tab.dirty[data-path="${path}"]`).waitFor();

    await page.keyboard.press("Control+`");
    await page.locator("#panel").waitFor({ state: "visible" });
    await page.locator(".terminal-view:not([hidden]) .xterm-rows").waitFor();
    await until(async () => /[$#]\s*$/m.test(await terminalScreen(page)), { what: "a shell prompt" });
    await runInTerminal(page, "echo $((6*7))");
    await until(async () => /^42\s*$/m.test(await terminalScreen(page)), { what: "42 on the terminal's screen" });
    const terminalId = await page.locator(".terminal-view:not([hidden])").getAttribute("data-terminal-id");

    // Ctrl+` hides the panel again, also with the focus in the terminal.
    await page.keyboard.press("Control+`");
    await page.locator("#panel").waitFor({ state: "hidden" });
    await page.keyboard.press("Control+`");
    await page.locator("#panel").waitFor({ state: "visible" });

    await page.reload();
    await connected(page);
    await page.locator(`.tab.active.dirty[data-path="${path}"]`).waitFor();
    assert.equal(await editorText(page), "kept: unsaved words");
    assert.equal(readHome(g, "draft.txt"), "kept:");
    await page.locator(`.terminal-view[data-terminal-id="${terminalId}"]:not([hidden]) .xterm-rows`).waitFor();
    await until(async () => /^42\s*$/m.test(await terminalScreen(page)), { what: "the scrollback after reload" });
    assert.match(await terminalScreen(page), /echo \$\(\(6\*7\)\)/);
    assert.equal(await page.locator(".terminal-view").count(), 1, "the same terminal, not a new one");

    // The terminal still works after the reload.
    await runInTerminal(page, "echo $((6*7+1))");
    await until(async () => /^43\s*$/m.test(await terminalScreen(page)), { what: "43 after the reload" });

    // The shell ending is shown, and the tab stays until closed.
    await runInTerminal(page, "exit 3");
    await until(async () => /exited with code 3/.test(await terminalScreen(page)), { what: "the exit to be shown" });
    await page.locator(`.tab.exited[data-terminal-id="${terminalId}"]`).waitFor();
    await page.locator(`.tab[data-terminal-id="${terminalId}"] .tab-close`).click();
    await page.locator(`.terminal-view[data-terminal-id="${terminalId}"]`).waitFor({ state: "detached" });
  });
});

test("two pages of one user mirror each other's edits, also typed at the same time", async () => {
  const g = await new Gateway().start();
  writeHome(g, "shared.txt", "start\n");
  await withBrowser("two pages", g, async ({ newPage }) => {
    const a = await newPage();
    await openApp(a, g);
    const b = await newPage(a.context());
    await b.goto(g.origin + "/");
    await connected(b);

    const path = await openFromTree(a, g, "shared.txt");
    // The other page mirrors the worker: the buffer opened elsewhere shows up as a tab there too.
    await b.locator(`.tab[data-path="${path}"]`).click();
    assert.equal(await editorText(b), "start\n");

    await typeAtEnd(a, "from A");
    await until(async () => (await editorText(b)) === "start\nfrom A", { what: "B to show A's typing" });
    await b.locator(`.tab.dirty[data-path="${path}"]`).waitFor();

    await typeAtEnd(b, " and B");
    await until(async () => (await editorText(a)) === "start\nfrom A and B", { what: "A to show B's typing" });

    // Both type at once: the worker takes one change at a time, the loser rebases and retries.
    await a.locator(editorContent).click();
    await a.keyboard.press("Control+Home");
    await b.locator(editorContent).click();
    await b.keyboard.press("Control+End");
    await Promise.all([a.keyboard.type("aaaaaaaaaaaaaaaaaaaa", { delay: 5 }), b.keyboard.type("bbbbbbbbbbbbbbbbbbbb", { delay: 5 })]);
    const expected = "aaaaaaaaaaaaaaaaaaaastart\nfrom A and Bbbbbbbbbbbbbbbbbbbbb";
    await until(async () => (await editorText(a)) === expected && (await editorText(b)) === expected,
      { what: "both pages to converge", timeout: 15_000 });

    await a.keyboard.press("Control+s");
    await until(() => readHome(g, "shared.txt") === expected, { what: "the saved file to match both pages" });
    await until(async () => !(await b.locator(`.tab[data-path="${path}"]`).evaluate((el) => el.classList.contains("dirty"))),
      { what: "B to see the save" });

    // Closing the buffer on one page closes its tab on the other.
    await a.locator(`.tab[data-path="${path}"] .tab-close`).click();
    await b.locator(`.tab[data-path="${path}"]`).waitFor({ state: "detached" });
    await a.locator(`.tab[data-path="${path}"]`).waitFor({ state: "detached" });
  });
});

test("a killed worker: the page says so, reconnects and keeps the unsaved edit", async () => {
  const g = await new Gateway().start();
  writeHome(g, "journal.txt", "base");
  await withBrowser("worker restart", g, async ({ newPage }) => {
    const page = await newPage();
    await openApp(page, g);
    const path = await openFromTree(page, g, "journal.txt");
    await typeAtEnd(page, " plus edit");
    await page.locator(`.tab.dirty[data-path="${path}"]`).waitFor();
    // The worker has confirmed (and so journalled) the edit before it is killed.
    await page.locator(`.tab[data-path="${path}"][data-synced="true"]`).waitFor();

    const pids = g.workerPids();
    assert.equal(pids.length >= 1, true, "a worker runs");
    for (const pid of pids) process.kill(pid, "SIGKILL");
    await until(async () => (await page.locator("#link").getAttribute("data-state")) !== "connected", { what: "the link to drop" });
    await connected(page);
    await until(async () => (await page.locator("#link").getAttribute("data-worker-restarted")) === "true",
      { what: "the status line to say the worker restarted" });
    assert.match(await page.locator("#link").innerText(), /worker restarted/);
    assert.notDeepEqual(g.workerPids(), pids);
    await page.locator(`.tab.dirty[data-path="${path}"]`).waitFor();
    assert.equal(await editorText(page), "base plus edit");

    // And editing goes on against the new worker.
    await typeAtEnd(page, "!");
    await page.keyboard.press("Control+s");
    await until(() => readHome(g, "journal.txt") === "base plus edit!", { what: "saving through the new worker" });
  });
});

test("a page over the user's page limit says why and does not reconnect on its own", async () => {
  const g = await new Gateway({ args: ["--max-pages-per-user=1"] }).start();
  await withBrowser("page limit", g, async ({ newPage }) => {
    const a = await newPage();
    await openApp(a, g);
    const b = await newPage(a.context());
    let opened = 0;
    b.on("websocket", () => opened++);
    await b.goto(g.origin + "/");
    await b.locator('#link[data-state="refused"]').waitFor({ timeout: 15_000 });
    assert.match(await b.locator("#link").innerText(), /too many pages open/);
    // A limit is not a crash: no reconnection loop.
    await sleep(3000);
    assert.equal(opened, 1);
    assert.equal(await b.locator("#link").getAttribute("data-state"), "refused");
    // Room made, a click connects.
    await a.close();
    await sleep(500);
    await b.locator("#link").click();
    await connected(b);
  });
});

test("a workspace that cannot start: the page says why, does not reconnect in a loop, and offers Try again", async () => {
  // A worker program that exits at once: every start fails, and the gateway closes the page with 4013.
  const g = await new Gateway({ args: ["--worker", "/bin/false"] }).start();
  await withBrowser("start failed", g, async ({ newPage }) => {
    const page = await newPage();
    let opened = 0;
    page.on("websocket", () => opened++);
    await page.goto(g.url);
    await page.locator('#link[data-state="unavailable"]').waitFor({ timeout: 20_000 });
    assert.equal(await page.locator("#link").getAttribute("data-code"), "4013");
    assert.match(await page.locator("#link").innerText(), /failed to start/);
    assert.ok(await page.locator("#retry").isVisible(), "a Try again button");
    // Said once, not retried: no new WebSocket while nobody clicks.
    const seen = opened;
    await sleep(4000);
    assert.equal(opened, seen);
    assert.equal(await page.locator("#link").getAttribute("data-state"), "unavailable");
    // Try again asks once more, and is told the same.
    await page.locator("#retry").click();
    await until(() => opened === seen + 1, { what: "one more WebSocket" });
    await page.locator('#link[data-state="unavailable"]').waitFor({ timeout: 20_000 });
    await sleep(2000);
    assert.equal(opened, seen + 1);
    assert.match(g.log, /No workspace for \S+: workspace failed to start \(close 4013\)/);
  });
});

test("a flood of terminal output is paused and resumed, and the page stays responsive", async () => {
  const g = await new Gateway().start();
  await withBrowser("terminal flood", g, async ({ newPage }) => {
    const page = await newPage();
    const sent = [];
    page.on("websocket", (ws) => ws.on("framesent", (f) => {
      const m = /"method":"(terminal:(?:pause|resume))"/.exec(String(f.payload));
      if (m) sent.push(m[1]);
    }));
    await openApp(page, g);
    await page.keyboard.press("Control+`");
    await page.locator(".terminal-view:not([hidden]) .xterm-rows").waitFor();
    await until(async () => /[$#]\s*$/m.test(await terminalScreen(page)), { what: "a shell prompt" });
    await runInTerminal(page, "seq 1 600000; echo FLOOD-$((1+1))-DONE");
    // While the output streams, the page keeps drawing frames. Without flow control the tab stops
    // drawing for good; the bound only has to tell that apart from a busy machine (speed belongs in
    // benchmarks, not here).
    for (let i = 0; i < 5; i++) {
      const t0 = Date.now();
      await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r(1))));
      assert.ok(Date.now() - t0 < 15000, `a frame took ${Date.now() - t0} ms during the flood`);
      await sleep(100);
    }
    await until(async () => /^FLOOD-2-DONE\s*$/m.test(await terminalScreen(page)), { what: "the end of the flood", timeout: 60_000 });
    assert.ok(sent.includes("terminal:pause"), `the page paused the terminal (sent: ${sent.join(", ") || "nothing"})`);
    assert.equal(sent[sent.length - 1], "terminal:resume", "and resumed it last");
    // Nothing was lost: the last lines of seq precede the marker.
    assert.match(await terminalScreen(page), /^600000\s*$/m);
  });
});
