// Previews of a student's web server: opened from the Ports dialog into a tab of their own origin, where
// the previewed page's script can neither open the IDE's /ws nor read the IDE's pages, nor see
// Helios' cookies. Real Chromium, gateway and worker; the "student's server" is a Node HTTP server on
// loopback, which the embedded worker reaches as its own.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { once } from "node:events";
import { Gateway, closeBrowser, until, withBrowser } from "./harness.mjs";

after(closeBrowser);

/** The student's app: a page whose script tries everything a hostile page would against the IDE, and
 * /headers, which echoes what reached the app. */
async function startApp(ideOrigin) {
  const seen = [];
  const page = `<!doctype html><meta charset="utf-8"><title>student app</title>
<pre id="result">running</pre>
<script>
const ide = ${JSON.stringify(ideOrigin)};
const result = {};
const done = () => { document.getElementById("result").textContent = JSON.stringify(result); document.title = "done"; };
async function run() {
  result.cookies = document.cookie;
  result.opener = window.opener === null;
  result.ws = await new Promise((resolve) => {
    let opened = false;
    const ws = new WebSocket(ide.replace(/^http/, "ws") + "/ws", "helios");
    ws.onopen = () => { opened = true; ws.send('{"jsonrpc":"2.0","id":1,"method":"worker:info","params":{}}'); };
    ws.onmessage = (e) => resolve("message: " + e.data);
    ws.onclose = (e) => resolve(opened ? "opened then closed " + e.code : "refused " + e.code);
    setTimeout(() => resolve("timeout"), 8000);
  });
  for (const [name, path, init] of [["session", "/api/session", {}], ["page", "/", {}],
      ["ticket", "/api/preview?port=1", { method: "POST" }]]) {
    try {
      const r = await fetch(ide + path, { credentials: "include", ...init });
      result[name] = "read " + r.status + " " + (await r.text()).slice(0, 80);
    } catch (e) {
      result[name] = "blocked " + e.name;
    }
  }
  const r = await fetch("headers", { credentials: "include" });
  result.appSaw = await r.json();
  done();
}
run().catch((e) => { result.error = String(e); done(); });
</script>`;
  const server = createServer((req, res) => {
    seen.push({ url: req.url, headers: req.headers });
    if (req.url === "/headers") {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify(req.headers));
      return;
    }
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    res.end(page);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { server, port: server.address().port, seen };
}

test("a previewed page cannot open the IDE's /ws, read its pages or see Helios' cookies", async () => {
  const g = await new Gateway({ args: ["--preview-listen", "127.0.0.1:0"] }).start();
  const app = await startApp(g.origin);
  try {
    await withBrowser("preview isolation", g, async ({ newPage }) => {
      const ide = await newPage();
      await ide.goto(g.url);
      await ide.locator('#link[data-state="connected"]').waitFor({ timeout: 15_000 });

      // The Ports dialog lists the app's port; Open Preview opens it in a new tab.
      await ide.locator("#open-ports").click();
      const open = ide.locator(`.ports-open[data-port="${app.port}"]`);
      await open.waitFor({ timeout: 10_000 });
      const [preview] = await Promise.all([ide.context().waitForEvent("page"), open.click()]);
      await until(() => preview.url().includes(`/preview/${app.port}/`), { what: "the preview tab" });
      const previewOrigin = new URL(preview.url()).origin;
      assert.notEqual(previewOrigin, g.origin);
      assert.equal(new URL(preview.url()).hostname, new URL(g.origin).hostname); // only the port differs
      assert.ok(!preview.url().includes("ticket"));
      await until(async () => (await preview.title()) === "done", { timeout: 30_000, what: "the app's script" });
      const result = JSON.parse(await preview.locator("#result").textContent());

      if (process.env.HELIOS_DEBUG) console.log(JSON.stringify(result));
      assert.equal(result.error, undefined, result.error);
      // Its own origin: the IDE's /ws is refused (before any message), the IDE's answers are unreadable.
      assert.match(result.ws, /^refused /, result.ws);
      assert.match(result.session, /^blocked /, result.session);
      assert.match(result.page, /^blocked /, result.page);
      assert.match(result.ticket, /^blocked /, result.ticket);
      assert.ok(result.opener, "the preview has no handle on the IDE's tab");
      // Helios' cookies are HttpOnly, and never reach the app.
      assert.equal(result.cookies, "");
      assert.ok(!JSON.stringify(result.appSaw).includes("helios_"), JSON.stringify(result.appSaw));
      assert.ok(app.seen.length >= 2);
      for (const { headers } of app.seen) assert.ok(!(headers.cookie ?? "").includes("helios_"), headers.cookie);
      assert.equal(app.seen[0].url, "/"); // the /preview/PORT prefix is not the app's
      assert.match(g.log, /Refused a WebSocket for \S+ from .*Origin/);

      // The IDE is unharmed: its own /ws still works.
      await ide.locator('#link[data-state="connected"]').waitFor();
      // A reload of the preview tab needs no new ticket (its cookie holds).
      await preview.reload();
      await until(async () => (await preview.title()) === "done", { timeout: 30_000, what: "the reloaded app" });
    });
  } finally {
    app.server.close();
  }
});
