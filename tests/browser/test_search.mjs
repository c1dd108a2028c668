// Search across files (Ctrl+Shift+F) and quick-open (Ctrl+P) in the page, on the real search service
// started by the worker from the user's manifest. Real Chromium, gateway, worker and service.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Gateway, closeBrowser, ownToGateway, sleep, until, withBrowser } from "./harness.mjs";

after(closeBrowser);

const service = resolve(new URL(".", import.meta.url).pathname, "../../services/search/helios-search.py");

function writeHome(g, relative, content) {
  mkdirSync(join(g.home, relative, ".."), { recursive: true });
  writeFileSync(join(g.home, relative), content);
  const parts = relative.split("/");
  for (let i = 1; i <= parts.length; i++) ownToGateway(join(g.home, ...parts.slice(0, i)));
}

/** The service as a user installs it: the program in the home (what the worker's sandbox shows) and
 * a manifest at the user's level. */
function installService(g) {
  writeHome(g, ".local/lib/helios-search.py", "");
  copyFileSync(service, join(g.home, ".local/lib/helios-search.py"));
  writeHome(g, ".config/helios/services/search.json",
    JSON.stringify({ exec: ["/usr/bin/python3", join(g.home, ".local/lib/helios-search.py")], topics: ["search:*"] }));
}

/** A student's project in the home (the page's project): the home's own dot folders and a folder
 * of secrets are .gitignored. */
function makeProject(g) {
  writeHome(g, ".gitignore", ".config/\n.local/\nsecret/\n");
  writeHome(g, "src/main.c", "#include <stdio.h>\n\nint zebra_count = 42;\n\nint main(void) { return zebra_count; }\n");
  writeHome(g, "notes/todo.md", "# Todo\n\n- Feed the Zebra\n");
  writeHome(g, "secret/keys.txt", "zebra secret\n");
  // Enough matches for the results to come in many notifications.
  for (let i = 0; i < 40; i++) writeHome(g, `many/f${String(i).padStart(2, "0")}.txt`, "stripe\n".repeat(100));
}

async function openApp(page, g) {
  await page.goto(g.url);
  await page.locator('#link[data-state="connected"]').waitFor({ timeout: 15_000 });
}

const summary = (page) => page.locator(".search-summary");

async function search(page, text) {
  const input = page.locator(".search-query");
  await input.fill(text);
  await input.press("Enter");
  await page.locator('.search-summary[data-state="done"]').waitFor({ timeout: 20_000 });
  return page.locator(".search-file").evaluateAll((rows) => rows.map((r) => r.dataset.path).sort());
}

test("search: across files, .gitignore honoured, case and regex, opens at the match, keyboard", async () => {
  const g = new Gateway();
  installService(g);
  makeProject(g);
  await g.start();
  await withBrowser("search across files", g, async ({ newPage }) => {
    const page = await newPage();
    await openApp(page, g);
    await page.keyboard.press("Control+Shift+F");
    await page.locator(".search-view").waitFor();
    assert.ok(await page.locator(".search-query").evaluate((el) => el === document.activeElement));

    // Case-insensitive by default; the .gitignored folder (and the home's dot folders) not searched.
    assert.deepEqual(await search(page, "zebra"), ["notes/todo.md", "src/main.c"]);
    assert.equal(await summary(page).getAttribute("data-matches"), "3");
    assert.match(await summary(page).textContent(), /^3 results in 2 files$/);

    // Match Case.
    await page.locator(".search-case").click();
    await page.locator('.search-summary[data-state="done"]').waitFor();
    assert.deepEqual(await search(page, "Zebra"), ["notes/todo.md"]);
    await page.locator(".search-case").click();

    // A regular expression only with the toggle; an invalid one says why.
    assert.deepEqual(await search(page, "zebra_\\w+ = \\d+"), []);
    assert.equal(await summary(page).textContent(), "No results");
    await page.locator(".search-regex").click();
    await page.locator('.search-summary[data-state="done"]').waitFor();
    assert.deepEqual(await search(page, "zebra_\\w+ = \\d+"), ["src/main.c"]);
    await page.locator(".search-query").fill("zebra(");
    await page.locator(".search-query").press("Enter");
    await page.locator('.search-summary[data-state="error"]').waitFor();
    assert.match(await summary(page).textContent(), /regular expression/i);
    await page.locator(".search-regex").click();

    // Include and exclude globs.
    await page.locator(".search-include").fill("*.md");
    assert.deepEqual(await search(page, "zebra"), ["notes/todo.md"]);
    await page.locator(".search-include").fill("");
    await page.locator(".search-exclude").fill("notes/**");
    assert.deepEqual(await search(page, "zebra"), ["src/main.c"]);
    await page.locator(".search-exclude").fill("");

    // A click on a match opens its file with the match selected: line 5, "return zebra" at column 17.
    await search(page, "return zebra");
    const match = page.locator('.search-match[data-path="src/main.c"]');
    assert.equal(await match.getAttribute("data-line"), "5");
    assert.equal(await match.getAttribute("data-column"), "17");
    assert.equal(await match.locator("mark").textContent(), "return zebra");
    await match.click();
    await page.locator(`.tab.active[data-path="${g.home}/src/main.c"]`).waitFor();
    // The selection ends after the match: column 17 + 12 characters, shown 1-based.
    await until(async () => (await page.locator("#cursor").textContent()) === "Ln 5, Col 30", { what: "the cursor at the match" });
    assert.match(await page.locator(".cm-activeLine").textContent(), /return zebra_count/);

    // The keyboard alone: from the query down to a match, Enter opens it.
    await search(page, "feed the");
    await page.locator(".search-query").press("ArrowDown");
    assert.equal(await page.evaluate(() => document.activeElement?.dataset.path), "notes/todo.md");
    await page.keyboard.press("ArrowDown");
    assert.equal(await page.evaluate(() => document.activeElement?.dataset.line), "3");
    await page.keyboard.press("Enter");
    await page.locator(`.tab.active[data-path="${g.home}/notes/todo.md"]`).waitFor();
    await until(async () => (await page.locator("#cursor").textContent()) === "Ln 3, Col 11", { what: "the cursor after 'Feed the'" });

    // The command palette has both commands with their shortcuts.
    await page.keyboard.press("Control+Shift+P");
    await page.locator(".palette-input").fill("files");
    const labels = await page.locator(".palette-item").evaluateAll((items) => items.map((i) => i.textContent));
    assert.ok(labels.includes("Search: Find in FilesCtrl+Shift+F"), labels.join(", "));
    await page.locator(".palette-input").fill("quick open");
    assert.equal(await page.locator(".palette-item").first().textContent(), "Go: Go to File… (Quick Open)Ctrl+P");
    await page.keyboard.press("Escape");
  });
});

test("search: results stream in as they come, and Escape cancels the search", async () => {
  const g = new Gateway();
  installService(g);
  makeProject(g);
  await g.start();
  await withBrowser("search streaming and cancel", g, async ({ newPage }) => {
    const page = await newPage();
    // Between the page and the gateway: every message passes, except that once armed, the first
    // search's results after its first batch, and its end, are held back until the test lets them
    // go, so the page is seen while that search is still running.
    const sent = [];
    let hold = false;
    let holdId = null;
    const held = [];
    let toPage = null;
    await page.routeWebSocket(/\/ws$/, (ws) => {
      const server = ws.connectToServer();
      toPage = (m) => ws.send(m);
      ws.onMessage((m) => {
        sent.push(String(m));
        server.send(m);
      });
      server.onMessage((m) => {
        const method = /"method":"(search:[a-z]+)"/.exec(String(m))?.[1];
        const id = method && JSON.parse(String(m)).params.searchId;
        if (hold && method === "search:results" && !holdId) {
          holdId = id;
          ws.send(m);
        } else if (hold && id && id === holdId) held.push(m);
        else ws.send(m);
      });
    });
    await openApp(page, g);
    await page.keyboard.press("Control+Shift+F");

    // Streaming: with the end held back, the matches that came are shown, counted, "searching".
    hold = true;
    await page.locator(".search-query").fill("stripe");
    await page.locator(".search-query").press("Enter");
    await until(() => held.length > 0, { timeout: 20_000, what: "the service's results" });
    await page.locator('.search-summary[data-state="running"]').waitFor();
    const shown = Number(await summary(page).getAttribute("data-matches"));
    assert.ok(shown > 0, "the first results are shown before the search ends");
    assert.match(await summary(page).textContent(), /searching/);
    assert.ok(await page.locator(".search-stop").isVisible());

    // Escape stops it: the page asks the service to cancel that search and shows nothing more.
    const start = sent.find((m) => m.includes('"search:text"'));
    assert.ok(start);
    await page.locator(".search-query").press("Escape");
    await page.locator('.search-summary[data-state="cancelled"]').waitFor();
    assert.match(await summary(page).textContent(), /stopped/);
    const cancel = await until(() => sent.find((m) => m.includes('"search:cancel"')), { what: "search:cancel" });
    const searchId = JSON.parse(cancel).params.searchId;
    assert.ok(typeof searchId === "string" && searchId.length > 0);
    assert.equal(searchId, holdId);
    hold = false;
    for (const m of held.splice(0)) toPage(m);
    await sleep(500);
    assert.equal(Number(await summary(page).getAttribute("data-matches")), shown);
    assert.equal(await page.locator('.search-summary[data-state="cancelled"]').count(), 1);

    // A new query cancels the search still running; the late answers of the old one change nothing.
    const arm = async (query) => {
      holdId = null;
      hold = true;
      await page.locator(".search-query").fill(query);
      await page.locator(".search-query").press("Enter");
      await until(() => held.length > 0, { timeout: 20_000, what: "the service's results" });
      await page.locator('.search-summary[data-state="running"]').waitFor();
      return holdId;
    };
    const cancels = () => sent.filter((m) => m.includes('"search:cancel"')).map((m) => JSON.parse(m).params.searchId);
    const first = await arm("stripe");
    assert.deepEqual(await search(page, "zebra"), ["notes/todo.md", "src/main.c"]);
    await until(() => cancels().includes(first), { what: "the first search cancelled" });
    hold = false;
    for (const m of held.splice(0)) toPage(m);
    await sleep(500);
    assert.equal(await summary(page).getAttribute("data-matches"), "3");
    assert.deepEqual(await page.locator(".search-file").evaluateAll((rows) => rows.map((r) => r.dataset.path).sort()),
      ["notes/todo.md", "src/main.c"]);

    // So does the stop button.
    const third = await arm("stripe");
    await page.locator(".search-stop").click();
    await page.locator('.search-summary[data-state="cancelled"]').waitFor();
    await until(() => cancels().includes(third), { what: "the stopped search cancelled" });
    assert.ok(await page.locator(".search-stop").isHidden());
    hold = false;
    for (const m of held.splice(0)) toPage(m);

    // A new query replaces the results; the whole answer ends in a count and the truncation notice
    // when the project has more matches than the page asks for.
    const files = await search(page, "stripe");
    assert.ok(files.length >= 20 && files.every((f) => f.startsWith("many/")), files.join(" "));
    assert.equal(await summary(page).getAttribute("data-matches"), "2000");
    assert.match(await page.locator(".search-notice").textContent(), /Only the first 2000 results/);
  });
});

test("quick-open: Ctrl+P finds a file by a fuzzy name and opens it; recent files first when empty", async () => {
  const g = new Gateway();
  installService(g);
  makeProject(g);
  await g.start();
  await withBrowser("quick open", g, async ({ newPage }) => {
    const page = await newPage();
    await openApp(page, g);
    await page.locator(".editor-host").click();
    await page.keyboard.press("Control+P");
    const input = page.locator(".quick-open .palette-input");
    await input.waitFor();
    await input.pressSequentially("tdmd");
    await page.locator(`.quick-open-item[data-path="${g.home}/notes/todo.md"]`).waitFor({ timeout: 20_000 });
    assert.equal(await page.locator(".quick-open-item").first().getAttribute("data-path"), `${g.home}/notes/todo.md`);
    await input.press("Enter");
    await page.locator(`.tab.active[data-path="${g.home}/notes/todo.md"]`).waitFor();
    assert.equal(await page.locator(".quick-open").count(), 0);

    // Arrow keys choose among several; .gitignored files are not offered.
    await page.keyboard.press("Control+P");
    await input.pressSequentially("mainc");
    await page.locator(`.quick-open-item[data-path="${g.home}/src/main.c"]`).waitFor({ timeout: 20_000 });
    await input.fill("keys");
    await page.locator('.quick-open-note:text("No matching files.")').waitFor({ timeout: 20_000 });
    await input.fill("f0");
    await until(async () => (await page.locator(".quick-open-item").count()) >= 2, { timeout: 20_000, what: "several files" });
    const second = await page.locator(".quick-open-item").nth(1).getAttribute("data-path");
    await input.press("ArrowDown");
    await input.press("Enter");
    await page.locator(`.tab.active[data-path="${second}"]`).waitFor();

    // Empty: the files opened recently, the last but the one in front first.
    await page.keyboard.press("Control+P");
    await page.locator(".quick-open-note:text('Recently opened')").waitFor();
    assert.equal(await page.locator(".quick-open-item").first().getAttribute("data-path"), `${g.home}/notes/todo.md`);
    await input.press("Enter");
    await page.locator(`.tab.active[data-path="${g.home}/notes/todo.md"]`).waitFor();
  });
});

test("search: without a search service the page says so instead of searching forever", async () => {
  const g = new Gateway();
  makeProject(g);
  await g.start();
  await withBrowser("search without the service", g, async ({ newPage }) => {
    const page = await newPage();
    await openApp(page, g);
    await page.keyboard.press("Control+Shift+F");
    await page.locator(".search-query").fill("zebra");
    await page.locator(".search-query").press("Enter");
    await page.locator('.search-summary[data-state="error"]').waitFor({ timeout: 25_000 });
    assert.match(await summary(page).textContent(), /not available|service/i);
    await page.keyboard.press("Control+P");
    await page.locator(".quick-open .palette-input").pressSequentially("main");
    await page.locator('.quick-open-note[data-state="error"]').waitFor({ timeout: 25_000 });
    assert.match(await page.locator(".quick-open-note").textContent(), /not available|service/i);
  });
});

test("search: at 390 px the panel slides over the editor and a result closes it", async () => {
  const g = new Gateway();
  installService(g);
  makeProject(g);
  await g.start();
  await withBrowser("search on a phone", g, async ({ newPage }) => {
    const page = await newPage();
    await page.setViewportSize({ width: 390, height: 800 });
    await openApp(page, g);
    await page.keyboard.press("Control+Shift+F");
    await page.locator(".search-view").waitFor();
    const box = await page.locator(".search-view").boundingBox();
    assert.ok(box && box.x >= 0 && box.x + box.width <= 390 && box.width >= 300, JSON.stringify(box));
    // Nothing of the form sticks out of the panel.
    for (const selector of [".search-query", ".search-regex", ".search-include", ".search-exclude"]) {
      const b = await page.locator(selector).boundingBox();
      assert.ok(b && b.x + b.width <= box.x + box.width + 0.5, `${selector}: ${JSON.stringify(b)}`);
    }
    assert.deepEqual(await search(page, "zebra_count;"), ["src/main.c"]);
    await page.locator(".search-match").click();
    await page.locator(`.tab.active[data-path="${g.home}/src/main.c"]`).waitFor();
    await page.locator(".search-view").waitFor({ state: "hidden" });
    // Back to the same results.
    await page.keyboard.press("Control+Shift+F");
    assert.equal(await page.locator(".search-match").count(), 1);
  });
});

test("search: a search service that dies at once is reported, not waited for", async () => {
  const g = new Gateway();
  writeHome(g, ".config/helios/services/search.json",
    JSON.stringify({ exec: ["/usr/bin/python3", "-c", "import sys; sys.exit(3)"], topics: ["search:*"] }));
  makeProject(g);
  await g.start();
  await withBrowser("search with a dying service", g, async ({ newPage }) => {
    const page = await newPage();
    await openApp(page, g);
    await page.keyboard.press("Control+Shift+F");
    await page.locator(".search-query").fill("zebra");
    await page.locator(".search-query").press("Enter");
    await page.locator('.search-summary[data-state="error"]').waitFor({ timeout: 25_000 });
    assert.match(await summary(page).textContent(), /search service stopped/);
    assert.equal(await page.locator(".search-match").count(), 0);
  });
});
