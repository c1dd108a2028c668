// A student's working day in the page, feature by feature: files from the explorer, an editor
// that indents as the file does, and the conflict banner. Real Chromium, gateway and worker.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Gateway, closeBrowser, ownToGateway, until, withBrowser } from "./harness.mjs";

after(closeBrowser);

const editorContent = ".editor-view .cm-content";
const shots = process.env.HELIOS_SCREENSHOTS;

async function shot(page, name) {
  if (shots) await page.screenshot({ path: join(shots, `${name}.png`) });
}

async function openApp(page, g) {
  await page.goto(g.url);
  await page.locator('#link[data-state="connected"]').waitFor({ timeout: 15_000 });
}

const row = (page, path) => page.locator(`.tree-row[data-path="${path}"]`);

async function openFromTree(page, g, relative) {
  let path = g.home;
  const parts = relative.split("/");
  for (const [i, part] of parts.entries()) {
    path += "/" + part;
    const expanded = await page.locator(`li[aria-expanded="true"] > .tree-row[data-path="${path}"]`).count();
    if (i === parts.length - 1 || !expanded) await row(page, path).click();
  }
  await page.locator(`.tab.active[data-path="${path}"]`).waitFor();
  return path;
}

async function editorText(page, scope = editorContent) {
  return page.locator(scope).evaluate((el) => [...el.querySelectorAll(".cm-line")].map((l) => l.textContent).join("\n"));
}

function writeHome(g, relative, content) {
  mkdirSync(join(g.home, relative, ".."), { recursive: true });
  writeFileSync(join(g.home, relative), content);
  // Every folder made on the way belongs to the user too.
  const parts = relative.split("/");
  for (let i = 1; i <= parts.length; i++) ownToGateway(join(g.home, ...parts.slice(0, i)));
}

const readHome = (g, relative) => readFileSync(join(g.home, relative), "utf8");

/** Answer the name dialog. */
async function typeName(page, name) {
  const input = page.locator(".dialog .dialog-input");
  await input.waitFor();
  await input.fill(name);
  await input.press("Enter");
  await input.waitFor({ state: "detached" });
}

async function menu(page, path, label) {
  await row(page, path).click({ button: "right" });
  await page.locator(`.context-menu [data-label="${label}"]`).click();
}

test("explorer: new file and folder, rename with F2 carrying unsaved edits, drag to move, delete", async () => {
  const g = await new Gateway().start();
  writeHome(g, "work/essay.txt", "draft\n");
  writeHome(g, "old/inner/deep.txt", "deep\n");
  await withBrowser("explorer file operations", g, async ({ newPage }) => {
    const page = await newPage();
    await openApp(page, g);

    // New file by the context menu of a folder: created empty, opened in the editor.
    await menu(page, `${g.home}/work`, "New File…");
    await typeName(page, "notes.py");
    await page.locator(`.tab.active[data-path="${g.home}/work/notes.py"]`).waitFor();
    assert.equal(readHome(g, "work/notes.py"), "");
    // An existing name is refused, the file left alone.
    await menu(page, `${g.home}/work`, "New File…");
    await typeName(page, "essay.txt");
    await until(async () => /already exists/.test(await page.locator("#message").innerText()), { what: "refusal" });
    assert.equal(readHome(g, "work/essay.txt"), "draft\n");

    // New folder by the keyboard (Alt+Shift+N) in the focused folder.
    await row(page, `${g.home}/work`).focus();
    await page.keyboard.press("Alt+Shift+N");
    await typeName(page, "data");
    await row(page, `${g.home}/work/data`).waitFor();
    assert.ok(existsSync(join(g.home, "work/data")));

    // Rename an open file with unsaved edits (F2): the tab follows, edits included, nothing saved.
    const essay = await openFromTree(page, g, "work/essay.txt");
    await page.locator(editorContent).click();
    await page.keyboard.press("Control+End");
    await page.keyboard.type("unsaved line");
    await page.locator(`.tab.dirty[data-synced="true"][data-path="${essay}"]`).waitFor();
    await row(page, essay).focus();
    await page.keyboard.press("F2");
    const input = page.locator(".dialog .dialog-input");
    await input.waitFor();
    assert.equal(await input.evaluate((el) => el.value.slice(el.selectionStart, el.selectionEnd)), "essay", "the name without its extension is selected");
    await input.fill("final.txt");
    await input.press("Enter");
    const renamed = `${g.home}/work/final.txt`;
    await page.locator(`.tab.active.dirty[data-path="${renamed}"]`).waitFor();
    await page.locator(`.tab[data-path="${essay}"]`).waitFor({ state: "detached" });
    assert.equal(await editorText(page), "draft\nunsaved line");
    assert.equal(readHome(g, "work/final.txt"), "draft\n", "the rename saved nothing");
    assert.ok(!existsSync(join(g.home, "work/essay.txt")));
    await page.keyboard.press("Control+s");
    await until(() => readHome(g, "work/final.txt") === "draft\nunsaved line", { what: "save under the new name" });
    assert.ok(!existsSync(join(g.home, "work/essay.txt")), "saving did not bring the old name back");

    // Drag a file onto a folder: moved, and its open tab follows.
    await row(page, renamed).dragTo(row(page, `${g.home}/work/data`));
    const moved = `${g.home}/work/data/final.txt`;
    await page.locator(`.tab[data-path="${moved}"]`).waitFor();
    await until(() => existsSync(join(g.home, "work/data/final.txt")) && !existsSync(join(g.home, "work/final.txt")), { what: "the move on disk" });
    await shot(page, "explorer-context-menu-before");

    // Delete a file with the Delete key: asks first; Cancel keeps it.
    await row(page, moved).waitFor();
    await row(page, moved).focus();
    await page.keyboard.press("Delete");
    const dialog = page.locator('.dialog[role="alertdialog"]');
    await dialog.waitFor();
    await dialog.locator('[data-value="cancel"]').click();
    assert.ok(existsSync(join(g.home, "work/data/final.txt")));
    await row(page, moved).focus();
    await page.keyboard.press("Delete");
    await dialog.locator('[data-value="delete"]').click();
    await row(page, moved).waitFor({ state: "detached" });
    assert.ok(!existsSync(join(g.home, "work/data/final.txt")));
    // Its open tab says so and keeps the text; Save Again writes it back.
    const banner = page.locator("#conflict-banner");
    await page.locator(`.tab[data-path="${moved}"]`).click();
    await banner.waitFor({ state: "visible" });
    assert.match(await banner.innerText(), /was deleted/);
    await shot(page, "deleted-open-file");
    await banner.locator('[data-action="save-again"]').click();
    await until(() => existsSync(join(g.home, "work/data/final.txt")), { what: "saved again" });
    await banner.waitFor({ state: "hidden" });
    await row(page, moved).waitFor();

    // A folder is deleted with everything in it (after its confirmation).
    await row(page, `${g.home}/old`).click({ button: "right" });
    await shot(page, "explorer-context-menu");
    await page.locator('.context-menu [data-label="Delete"]').click();
    assert.match(await dialog.innerText(), /everything in it/);
    await dialog.locator('[data-value="delete"]').click();
    await until(() => !existsSync(join(g.home, "old")), { what: "recursive delete" });
    await row(page, `${g.home}/old`).waitFor({ state: "detached" });

    // A file deleted from outside (a terminal, another program) while open says so too.
    const notes = await openFromTree(page, g, "work/notes.py");
    rmSync(join(g.home, "work/notes.py"));
    await until(async () => /notes\.py was deleted/.test(await banner.innerText().catch(() => "")), { what: "the deletion said" });
    assert.equal(await page.locator(`.tab.active.deleted[data-path="${notes}"]`).count(), 1);
  });
});

test("a rename made in one tab moves the buffer in every tab, unsaved edits and all, and a reload finds it there", async () => {
  const g = await new Gateway().start();
  writeHome(g, "docs/report.txt", "draft\n");
  await withBrowser("renames followed", g, async ({ newPage }) => {
    const first = await newPage();
    await openApp(first, g);
    const second = await newPage(first.context());
    await openApp(second, g);
    const report = await openFromTree(second, g, "docs/report.txt");
    await second.locator(editorContent).click();
    await second.keyboard.press("Control+End");
    await second.keyboard.type("typed in the second tab");
    await second.locator(`.tab.dirty[data-synced="true"][data-path="${report}"]`).waitFor();

    // The first tab renames the folder from the explorer; it never opened the file.
    await menu(first, `${g.home}/docs`, "Rename…");
    await typeName(first, "papers");
    const moved = `${g.home}/papers/report.txt`;
    await second.locator(`.tab.active.dirty[data-path="${moved}"]`).waitFor();
    assert.equal(await second.locator(`.tab[data-path="${report}"]`).count(), 0);
    assert.equal(await editorText(second), "draft\ntyped in the second tab");
    // The first tab mirrors the workspace: the buffer is open there too, under its new name.
    await first.locator(`.tab.dirty[data-path="${moved}"]`).waitFor();
    assert.equal(readHome(g, "papers/report.txt"), "draft\n", "the rename saved nothing");

    // Typing goes on in the moved tab, and a reload shows it under the new name with every edit.
    await second.keyboard.type("!");
    await second.locator(`.tab.dirty[data-synced="true"][data-path="${moved}"]`).waitFor();
    await second.reload();
    await second.locator('#link[data-state="connected"]').waitFor({ timeout: 15_000 });
    await second.locator(`.tab.dirty[data-path="${moved}"]`).click();
    await until(async () => (await editorText(second)) === "draft\ntyped in the second tab!", { what: "the edits after the reload" });
    await second.keyboard.press("Control+s");
    await until(() => readHome(g, "papers/report.txt") === "draft\ntyped in the second tab!", { what: "saved under the new name" });
    assert.ok(!existsSync(join(g.home, "docs")));

    // Deleted from the first tab's explorer: the second tab says so and keeps the text.
    await menu(first, moved, "Delete");
    await first.locator('.dialog[role="alertdialog"] [data-value="delete"]').click();
    await second.locator(`.tab.active.deleted[data-path="${moved}"]`).waitFor();
    await until(async () => /was deleted/.test(await second.locator("#conflict-banner").innerText().catch(() => "")), { what: "the deletion said in the other tab" });
    assert.equal(await editorText(second), "draft\ntyped in the second tab!");
  });
});

test("editor: indentation from the file, Ctrl+G, Ctrl+H, highlighting for what a class writes", async () => {
  const g = await new Gateway().start();
  writeHome(g, "four.py", "def f():\n    if True:\n        return 1\n");
  writeHome(g, "Makefile", "all: prog\n\nprog: prog.c\n\tcc -o prog prog.c\n");
  writeHome(g, "tabbed.c", "int main(void)\n{\n\treturn 0;\n}\n");
  writeHome(g, "long.txt", Array.from({ length: 60 }, (_, i) => `line ${i + 1}`).join("\n") + "\n");
  const samples = {
    "run.sh": ["Shell", "#!/bin/sh\n# comment\necho \"hi\"\n"],
    "Main.java": ["Java", "public class Main { // comment\n}\n"],
    "main.go": ["Go", "package main // comment\n"],
    "lib.rs": ["Rust", "fn main() {} // comment\n"],
    "q.sql": ["SQL", "SELECT 1; -- comment\n"],
    "c.yaml": ["YAML", "key: value # comment\n"],
    "Cargo.toml": ["TOML", "[package]\nname = \"x\" # comment\n"],
    "Dockerfile": ["Dockerfile", "# comment\nFROM debian\nRUN true\n"],
  };
  for (const [name, [, text]] of Object.entries(samples)) writeHome(g, name, text);
  await withBrowser("editor indentation", g, async ({ newPage }) => {
    const page = await newPage();
    await openApp(page, g);

    // Python indented by four: Enter after "def f():" gives four spaces (the default was two).
    await openFromTree(page, g, "four.py");
    assert.equal(await page.locator("#indent").innerText(), "Spaces: 4");
    await page.locator(".cm-line").first().click();
    await page.keyboard.press("End");
    await page.keyboard.press("Enter");
    await page.keyboard.type("x = 1");
    assert.equal((await editorText(page)).split("\n")[1], "    x = 1");

    // A Makefile gets a tab after a recipe line; so does a file indented with tabs.
    await openFromTree(page, g, "Makefile");
    assert.equal(await page.locator("#indent").innerText(), "Tabs");
    assert.equal(await page.locator("#language").innerText(), "Makefile");
    await page.locator(".cm-line", { hasText: "cc -o prog" }).click();
    await page.keyboard.press("End");
    await page.keyboard.press("Enter");
    await page.keyboard.type("strip prog");
    assert.equal((await editorText(page)).split("\n")[4], "\tstrip prog");
    await openFromTree(page, g, "tabbed.c");
    assert.equal(await page.locator("#indent").innerText(), "Tabs");

    // Ctrl+G goes to a line.
    await openFromTree(page, g, "long.txt");
    await page.locator(editorContent).click();
    await page.keyboard.press("Control+g");
    const goto = page.locator(".cm-panel input[name=line]");
    await goto.waitFor();
    await goto.fill("42");
    await goto.press("Enter");
    await until(async () => (await page.locator("#cursor").innerText()).startsWith("Ln 42,"), { what: "the cursor on line 42" });

    // Ctrl+H opens replace with its field focused; Replace All changes the buffer.
    await page.keyboard.press("Control+h");
    const replace = page.locator(".cm-search input[name=replace]");
    await replace.waitFor();
    assert.equal(await replace.evaluate((el) => el === document.activeElement), true, "the replace field has the focus");
    await page.locator(".cm-search input[name=search]").fill("line 5");
    await replace.fill("row five");
    await page.locator('.cm-search button[name=replaceAll]').click();
    await until(async () => (await editorText(page)).split("\n")[4] === "row five", { what: "replaced" });
    await shot(page, "editor-replace");

    // Highlighting: each language is named in the status bar and its comment is styled as one.
    for (const [name, [language]] of Object.entries(samples)) {
      await openFromTree(page, g, name);
      assert.equal(await page.locator("#language").innerText(), language, name);
      await until(async () => (await page.locator(`${editorContent} span`).count()) > 0, { what: `${name} highlighted` });
      const styled = await page.locator(editorContent).evaluate((el) =>
        [...el.querySelectorAll("span")].some((s) => /comment/.test(s.textContent) && s.className));
      assert.ok(styled, `${name}: the comment is highlighted`);
    }
  });
});

test("the conflict banner says Keep Mine overwrites the disk; the compare view follows the disk", async () => {
  const g = await new Gateway().start();
  writeHome(g, "notes.md", "# Notes\n");
  await withBrowser("conflict wording and fresh compare", g, async ({ newPage }) => {
    const page = await newPage();
    await openApp(page, g);
    const path = await openFromTree(page, g, "notes.md");
    await page.locator(editorContent).click();
    await page.keyboard.press("Control+End");
    await page.keyboard.type("mine");
    await page.locator(`.tab.dirty[data-synced="true"][data-path="${path}"]`).waitFor();
    writeHome(g, "notes.md", "# Notes\ntheirs\n");
    const banner = page.locator("#conflict-banner");
    await banner.waitFor({ state: "visible" });
    assert.match(await banner.innerText(), /overwrites the file on disk/);
    assert.match(await banner.locator('[data-action="keep"]').innerText(), /overwrite disk/);
    await shot(page, "conflict-banner");

    await banner.locator('[data-action="compare"]').click();
    const disk = ".merge-overlay .cm-merge-a .cm-content";
    await until(async () => (await editorText(page, disk)) === "# Notes\ntheirs\n", { what: "the disk side" });
    // The file changes again while the compare view is open: its disk side follows.
    writeHome(g, "notes.md", "# Notes\ntheirs, edited again\n");
    await until(async () => (await editorText(page, disk)) === "# Notes\ntheirs, edited again\n",
      { what: "the compare view to show the disk as it is now" });
    assert.match(await page.locator('.merge-overlay [data-action="keep"]').innerText(), /overwrite disk/);
    await shot(page, "compare-view");
  });
});

async function terminalScreen(page, scope = ".terminal-view.focused") {
  return page.locator(`${scope} .xterm-rows`).innerText();
}

/** Double-click the first word of the terminal line matching `re` (xterm.js selects the word). */
async function selectWordOnLine(page, re) {
  const box = await page.locator(".terminal-view.focused .xterm-rows > div", { hasText: re }).boundingBox();
  await page.mouse.dblclick(box.x + 12, box.y + box.height / 2);
}

async function typeInTerminal(page, command) {
  await page.keyboard.type(command);
  await page.keyboard.press("Enter");
}

test("terminals: copy and paste keys, right-click menu, split, an ended shell or worker says so and offers a new one", async () => {
  const g = await new Gateway().start();
  await withBrowser("terminal copy paste split", g, async ({ newPage }) => {
    const page = await newPage();
    await page.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: g.origin });
    await openApp(page, g);
    await page.keyboard.press("Control+`");
    await page.locator(".terminal-view.focused .xterm-rows").waitFor();
    await until(async () => /\$\s*$/m.test(await terminalScreen(page)), { what: "a prompt" });
    await page.locator(".terminal-view.focused .xterm-screen").click();

    // Ctrl+C with a selection copies it (and interrupts nothing).
    await typeInTerminal(page, "echo copy-$((40+2))-me");
    await until(async () => /^copy-42-me\s*$/m.test(await terminalScreen(page)), { what: "the output" });
    await selectWordOnLine(page, /^copy-42-me\s*$/);
    await page.keyboard.press("Control+c");
    await until(async () => (await page.evaluate(() => navigator.clipboard.readText())).includes("copy-42-me"),
      { what: "the selection on the clipboard" });

    // Ctrl+C without a selection interrupts the running command.
    await typeInTerminal(page, "sleep 100");
    await page.waitForTimeout(300);
    await page.keyboard.press("Control+c");
    await typeInTerminal(page, "echo status=$?");
    await until(async () => /^status=130\s*$/m.test(await terminalScreen(page)), { what: "sleep interrupted (130)" });

    // Ctrl+Shift+V pastes the clipboard into the shell.
    await page.evaluate(() => navigator.clipboard.writeText("echo pasted-$((2+3))"));
    await page.keyboard.press("Control+Shift+V");
    // Reading the clipboard takes a moment: Enter once the text is on the command line.
    await until(async () => /\$ echo pasted-\$\(\(2\+3\)\)\s*$/m.test(await terminalScreen(page)), { what: "the pasted text" });
    await page.keyboard.press("Enter");
    await until(async () => /^pasted-5\s*$/m.test(await terminalScreen(page)), { what: "the pasted command's output" });

    // Ctrl+B goes to the shell (here the terminal echoes it as ^B), not to the explorer's toggle.
    await page.keyboard.type("echo ab");
    await page.keyboard.press("Control+b");
    await page.keyboard.type("X");
    await page.keyboard.press("Enter");
    await until(async () => /echo ab\^BX/.test(await terminalScreen(page)), { what: "Ctrl+B sent to the shell" });
    assert.equal(await page.locator("#sidebar").isVisible(), true, "the explorer stayed");

    // The right-click menu offers copy, paste and split; Ctrl+Shift+C copies too.
    await selectWordOnLine(page, /^pasted-5\s*$/);
    await page.keyboard.press("Control+Shift+C");
    await until(async () => (await page.evaluate(() => navigator.clipboard.readText())).includes("pasted-5"), { what: "copied" });
    await page.locator(".terminal-view.focused .xterm-screen").click({ button: "right" });
    const items = await page.locator(".context-menu .menu-item").evaluateAll((els) => els.map((e) => e.dataset.label));
    for (const label of ["Copy", "Paste", "Split Terminal", "Kill Terminal"]) assert.ok(items.includes(label), `${label} in ${items}`);
    await shot(page, "terminal-menu");
    await page.locator('.context-menu [data-label="Split Terminal"]').click();

    // Split: two terminals side by side, each its own shell.
    await until(async () => (await page.locator(".terminal-view:not([hidden])").count()) === 2, { what: "two terminals shown" });
    const boxes = await page.locator(".terminal-view:not([hidden])").evaluateAll((els) => els.map((e) => e.getBoundingClientRect().x));
    assert.ok(Math.abs(boxes[0] - boxes[1]) > 100, `side by side: ${boxes}`);
    await until(async () => /\$\s*$/m.test(await terminalScreen(page)), { what: "a prompt in the new one" });
    await page.locator(".terminal-view.focused .xterm-screen").click();
    await typeInTerminal(page, "echo right-side");
    await until(async () => /^right-side\s*$/m.test(await terminalScreen(page)), { what: "the split terminal runs" });
    await shot(page, "terminal-split");

    // A shell that exits: its tab says how, and the view offers a new terminal.
    await typeInTerminal(page, "exit 3");
    const ended = page.locator(".terminal-view.focused .terminal-ended");
    await ended.waitFor();
    assert.match(await page.locator("#terminal-tabs .tab.active").innerText(), /ended: exit 3/);
    await ended.locator('[data-action="new-terminal"]').click();
    await until(async () => (await page.locator(".terminal-view:not([hidden])").count()) === 2, { what: "the new one beside" });
    await until(async () => /\$\s*$/m.test(await terminalScreen(page)), { what: "a prompt in the replacement" });
    assert.equal(await page.locator("#terminal-tabs .tab.exited").count(), 0);

    // The worker dies: every terminal's tab says so after the reconnection, with a new one offered.
    const pids = g.workerPids();
    for (const pid of pids) process.kill(pid, "SIGKILL");
    await until(async () => (await page.locator("#link").getAttribute("data-worker-restarted")) === "true",
      { what: "the reconnection to a new worker", timeout: 20_000 });
    await until(async () => (await page.locator("#terminal-tabs .tab.exited").count()) === 2, { what: "both tabs ended" });
    assert.match(await page.locator("#terminal-tabs .tab.active").innerText(), /worker was restarted/);
    await shot(page, "terminal-worker-restarted");
    await page.locator('.terminal-view.focused .terminal-ended [data-action="new-terminal"]').click();
    await until(async () => /\$\s*$/m.test(await terminalScreen(page)), { what: "a prompt from the new worker" });
  });
});

test("settings live in the worker: every page follows, a reload and another browser keep them; folders stay expanded", async () => {
  const g = await new Gateway().start();
  writeHome(g, "course/week1/lab/notes.txt", "a long line that goes on and on ".repeat(20) + "\n");
  await withBrowser("settings", g, async ({ newPage }) => {
    const a = await newPage();
    const b = await newPage();
    await openApp(a, g);
    await openApp(b, g);
    const theme = (page) => page.evaluate(() => document.documentElement.dataset.theme);
    assert.equal(await theme(a), "dark");

    // Nested folders expanded in one page.
    await openFromTree(a, g, "course/week1/lab/notes.txt");

    // The settings dialog: each change applies at once, in this page and the other.
    await a.click("#settings");
    await a.selectOption("#setting-theme", "light");
    await until(async () => (await theme(b)) === "light", { what: "the other page to turn light" });
    await a.fill("#setting-font-size", "18");
    await a.locator("#setting-font-size").press("Tab");
    await a.fill("#setting-tab-width", "2");
    await a.locator("#setting-tab-width").press("Tab");
    await a.check("#setting-word-wrap");
    await shot(a, "settings-light");
    await a.locator('.settings-overlay [data-value="close"]').click();
    await until(async () => (await a.locator(editorContent).evaluate((el) => getComputedStyle(el).fontSize)) === "18px",
      { what: "the editor font at 18px" });
    assert.equal(await a.locator(editorContent).evaluate((el) => el.classList.contains("cm-lineWrapping")), true, "word wrap");
    assert.equal(await a.locator(editorContent).evaluate((el) => getComputedStyle(el).tabSize), "2");
    assert.equal(await theme(b), "light");

    // A reload, and a new browser (no storage of this one), find the settings and the expanded folders.
    await a.reload();
    await a.locator('#link[data-state="connected"]').waitFor();
    const c = await newPage();
    await openApp(c, g);
    for (const page of [a, c]) {
      assert.equal(await theme(page), "light");
      await row(page, `${g.home}/course/week1/lab/notes.txt`).waitFor();
      assert.equal(await page.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue("--editor-font-size").trim()), "18px");
    }

    // The command palette (Ctrl+Shift+P, F1) lists every command with its shortcut and runs one.
    await c.keyboard.press("Control+Shift+P");
    const palette = c.locator(".palette");
    await palette.waitFor();
    const listed = await palette.locator(".palette-item").evaluateAll((els) => els.map((e) => e.textContent));
    assert.ok(listed.length >= 20, `${listed.length} commands`);
    for (const key of ["Ctrl+S", "Ctrl+G", "Ctrl+H", "Ctrl+Shift+5", "Alt+N", "Ctrl+B", "Ctrl+Shift+P / F1"])
      assert.ok(listed.some((t) => t.includes(key)), `${key} in the palette`);
    await c.keyboard.type("high contrast");
    assert.equal(await palette.locator(".palette-item").count(), 1);
    await shot(c, "command-palette");
    await c.keyboard.press("Enter");
    await until(async () => (await theme(a)) === "high-contrast", { what: "high contrast everywhere" });
    await c.keyboard.press("F1");
    await palette.waitFor();
    await c.keyboard.press("Escape");
    await palette.waitFor({ state: "detached" });
    await shot(a, "high-contrast");
  });
});

test("at 390 px wide the explorer folds away and everything, Log out included, can be reached", async () => {
  const g = await new Gateway().start();
  writeHome(g, "src/app.py", "print('hi')\n");
  await withBrowser("narrow screen", g, async ({ newPage }) => {
    const page = await newPage();
    await page.setViewportSize({ width: 390, height: 844 });
    await openApp(page, g);
    assert.equal(await page.locator("#sidebar").isVisible(), false, "the explorer is folded away");
    const within = async (selector) => {
      const box = await page.locator(selector).boundingBox();
      return box && box.x >= 0 && box.x + box.width <= 390 && box.y + box.height <= 844;
    };
    for (const id of ["#toggle-explorer", "#toggle-panel", "#settings", "#open-palette", "#logout"])
      assert.ok(await within(id), `${id} is on the screen`);

    await page.click("#toggle-explorer");
    await page.locator("#sidebar").waitFor({ state: "visible" });
    assert.ok(await within("#sidebar"));
    await shot(page, "narrow-explorer");
    await row(page, `${g.home}/src`).click();
    await row(page, `${g.home}/src/app.py`).click();
    await page.locator(`.tab.active[data-path="${g.home}/src/app.py"]`).waitFor();
    await page.locator("#sidebar").waitFor({ state: "hidden" });
    await shot(page, "narrow-editor");

    // The terminal opens too, and Log out logs out.
    await page.click("#toggle-panel");
    await page.locator(".terminal-view.focused .xterm-rows").waitFor();
    await page.click("#logout");
    await page.locator("#login-token").waitFor();
  });
});

/** Drop files made in the page (name → text) on the element `selector`, as a drag from the desktop. */
async function dropFiles(page, selector, files) {
  await page.locator(selector).first().evaluate((el, files) => {
    const dt = new DataTransfer();
    for (const [name, text] of Object.entries(files)) dt.items.add(new File([text], name));
    const at = el.getBoundingClientRect();
    const init = { bubbles: true, cancelable: true, dataTransfer: dt, clientX: at.x + 5, clientY: at.y + 5 };
    el.dispatchEvent(new DragEvent("dragenter", init));
    el.dispatchEvent(new DragEvent("dragover", init));
    el.dispatchEvent(new DragEvent("drop", init));
  }, files);
}

test("upload many files, a large one in chunks with progress and cancel, by button and drop; download", async () => {
  const g = await new Gateway().start();
  writeHome(g, "site/index.html", "<h1>hi</h1>\n");
  await withBrowser("upload and download", g, async ({ newPage }) => {
    const page = await newPage();
    await openApp(page, g);
    await row(page, `${g.home}/site`).click();

    // The button: three files at once into the focused folder, one of them 3 MiB (6 chunks).
    const big = Buffer.alloc(3 * 1024 * 1024 + 7, 0);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;
    const [chooser] = await Promise.all([page.waitForEvent("filechooser"), page.click("#upload")]);
    await chooser.setFiles([
      { name: "a.txt", mimeType: "text/plain", buffer: Buffer.from("alpha\n") },
      { name: "photo.bin", mimeType: "application/octet-stream", buffer: big },
      { name: "b.py", mimeType: "text/plain", buffer: Buffer.from("print(2)\n") },
    ]);
    await until(() => existsSync(join(g.home, "site/b.py")), { what: "all three uploaded" });
    assert.equal(readHome(g, "site/a.txt"), "alpha\n");
    assert.ok(readFileSync(join(g.home, "site/photo.bin")).equals(big), "the large file arrives whole");
    await row(page, `${g.home}/site/photo.bin`).waitFor();

    // A large upload shows its progress and can be cancelled: nothing is left under its name.
    const huge = join(g.base, "huge.iso");
    writeFileSync(huge, Buffer.alloc(64 * 1024 * 1024, 1));
    const [chooser2] = await Promise.all([page.waitForEvent("filechooser"), page.click("#upload")]);
    await chooser2.setFiles([huge]);
    const bar = page.locator(`.upload[data-path="${g.home}/site/huge.iso"] progress`);
    await until(async () => Number(await bar.getAttribute("value").catch(() => 0)) > 0, { what: "progress", timeout: 20_000 });
    await shot(page, "upload-progress");
    await page.locator(`.upload[data-path="${g.home}/site/huge.iso"] .upload-cancel`).click();
    await until(async () => /cancelled/.test(await page.locator("#message").innerText()), { what: "cancelled", timeout: 20_000 });
    const left = readdirSync(join(g.home, "site"));
    assert.ok(!left.includes("huge.iso") && !left.some((n) => n.startsWith(".helios-")), `left: ${left}`);

    // An existing name asks before replacing.
    const [chooser3] = await Promise.all([page.waitForEvent("filechooser"), page.click("#upload")]);
    await chooser3.setFiles([{ name: "a.txt", mimeType: "text/plain", buffer: Buffer.from("replaced\n") }]);
    const dialog = page.locator('.dialog[role="alertdialog"]');
    await dialog.waitFor();
    assert.match(await dialog.innerText(), /Replace a\.txt\?/);
    await dialog.locator('[data-value="replace"]').click();
    await until(() => readHome(g, "site/a.txt") === "replaced\n", { what: "replaced" });

    // Drop onto a folder of the tree.
    await dropFiles(page, `.tree-row[data-path="${g.home}/site"]`, { "dropped.txt": "from the desktop\n" });
    await until(() => existsSync(join(g.home, "site/dropped.txt")), { what: "the dropped file" });
    assert.equal(readHome(g, "site/dropped.txt"), "from the desktop\n");

    // Dropped on the editor: uploaded beside the open file, never pasted into it.
    const path = await openFromTree(page, g, "site/index.html");
    await dropFiles(page, editorContent, { "notes.md": "# not for pasting\n" });
    await until(() => existsSync(join(g.home, "site/notes.md")), { what: "uploaded beside" });
    assert.equal(await editorText(page), "<h1>hi</h1>\n");
    assert.equal(await page.locator(`.tab.dirty[data-path="${path}"]`).count(), 0, "the open file is untouched");

    // Download from the context menu.
    await row(page, `${g.home}/site/photo.bin`).click({ button: "right" });
    const [saved] = await Promise.all([page.waitForEvent("download"), page.locator('.context-menu [data-label="Download"]').click()]);
    assert.equal(saved.suggestedFilename(), "photo.bin");
    assert.ok(readFileSync(await saved.path()).equals(big), "the download is the file");

    // A file larger than one message (16 MiB) downloads too, in pieces.
    const large = Buffer.alloc(20 * 1024 * 1024);
    for (let i = 0; i < large.length; i += 4096) large[i] = (i >> 12) & 0xff;
    writeFileSync(join(g.home, "site/large.dat"), large);
    ownToGateway(join(g.home, "site/large.dat"));
    await row(page, `${g.home}/site/large.dat`).waitFor();
    await row(page, `${g.home}/site/large.dat`).click({ button: "right" });
    const [saved2] = await Promise.all([page.waitForEvent("download", { timeout: 60_000 }),
      page.locator('.context-menu [data-label="Download"]').click()]);
    assert.ok(readFileSync(await saved2.path()).equals(large), "the large download is the file");
  });
});

test("a folder downloads as a zip file from the explorer's menu, with progress, and unzips to the same tree", async () => {
  const g = await new Gateway().start();
  writeHome(g, "course/week1/notes.md", "# Week 1\n");
  writeHome(g, "course/week1/caf\u00e9.py", "print('hi')\n");
  const blob = Buffer.alloc(6 * 1024 * 1024);
  for (let i = 0; i < blob.length; i += 4) blob.writeUInt32LE((i * 2654435761) >>> 0, i);
  writeHome(g, "course/data/blob.bin", blob);
  await withBrowser("zip download", g, async ({ newPage }) => {
    const page = await newPage();
    await openApp(page, g);
    await row(page, `${g.home}/course`).click({ button: "right" });
    const [saved] = await Promise.all([
      page.waitForEvent("download", { timeout: 60_000 }),
      (async () => {
        await page.locator('.context-menu [data-label="Download as Zip"]').click();
        // Its progress shows while the worker makes it.
        await page.locator(`.upload.download[data-path="${g.home}/course"]`).waitFor();
        await shot(page, "zip-download");
      })(),
    ]);
    assert.equal(saved.suggestedFilename(), "course.zip");
    const zip = join(g.home, "..", "course.zip");
    writeFileSync(zip, readFileSync(await saved.path()));
    const listing = execFileSync("/usr/bin/python3", ["-c", `
import sys, zipfile, json
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
print(json.dumps({i.filename: (z.read(i).hex() if i.file_size < 1000 else i.file_size) for i in z.infolist()}))
`, zip], { encoding: "utf8" });
    assert.deepEqual(JSON.parse(listing), {
      "course/": "",
      "course/week1/": "",
      "course/week1/notes.md": Buffer.from("# Week 1\n").toString("hex"),
      "course/week1/caf\u00e9.py": Buffer.from("print('hi')\n").toString("hex"),
      "course/data/": "",
      "course/data/blob.bin": blob.length,
    });
    await page.locator(".upload.download").waitFor({ state: "detached" });
  });
});

test("text in ISO-8859-1 and Windows-1252: edited and saved back in its encoding, named in the status bar; what it cannot hold is refused", async () => {
  const g = await new Gateway().start();
  writeHome(g, "latin.txt", Buffer.from("caf\u00e9\r\n", "latin1"));
  writeHome(g, "quotes.txt", Buffer.from([0x93, 0x68, 0x69, 0x94, 0x20, 0x80, 0x0a])); // “hi” €
  const bytes = (name) => readFileSync(join(g.home, name));
  await withBrowser("8-bit text", g, async ({ newPage }) => {
    const page = await newPage();
    await openApp(page, g);

    const latin = await openFromTree(page, g, "latin.txt");
    await until(async () => (await editorText(page)) === "caf\u00e9\r\n", { what: "the Latin-1 text decoded" });
    assert.equal(await page.locator("#encoding").innerText(), "ISO-8859-1");
    await page.locator(editorContent).click();
    await page.keyboard.press("Control+End");
    await page.keyboard.type("na\u00efve \u00bd");
    await page.locator(`.tab.dirty[data-synced="true"][data-path="${latin}"]`).waitFor();
    await page.keyboard.press("Control+s");
    await until(() => bytes("latin.txt").equals(Buffer.from("caf\u00e9\r\nna\u00efve \u00bd", "latin1")), { what: "saved in ISO-8859-1" });
    await page.locator(`.tab:not(.dirty)[data-path="${latin}"]`).waitFor();

    // The euro sign is not Latin-1: refused with the reason, taken back, nothing written.
    await page.keyboard.type("\u20ac");
    await until(async () => /Edit refused.*U\+20AC.*iso-8859-1/.test(await page.locator("#message").innerText()), { what: "the refusal said" });
    await until(async () => (await editorText(page)) === "caf\u00e9\r\nna\u00efve \u00bd", { what: "the character taken back" });
    await page.locator(`.tab:not(.dirty)[data-synced="true"][data-path="${latin}"]`).waitFor();
    assert.ok(bytes("latin.txt").equals(Buffer.from("caf\u00e9\r\nna\u00efve \u00bd", "latin1")));
    await shot(page, "latin1-refused");

    // Windows-1252: curly quotes and the euro sign, typed and saved as single bytes.
    const quotes = await openFromTree(page, g, "quotes.txt");
    await until(async () => (await editorText(page)) === "\u201chi\u201d \u20ac\n", { what: "the Windows-1252 text decoded" });
    assert.equal(await page.locator("#encoding").innerText(), "Windows-1252");
    await page.locator(editorContent).click();
    await page.keyboard.press("Control+End");
    await page.keyboard.type("\u2018\u20ac2\u2019");
    await page.locator(`.tab.dirty[data-synced="true"][data-path="${quotes}"]`).waitFor();
    await page.keyboard.press("Control+s");
    await until(() => bytes("quotes.txt").equals(Buffer.from([0x93, 0x68, 0x69, 0x94, 0x20, 0x80, 0x0a, 0x91, 0x80, 0x32, 0x92])), { what: "saved in Windows-1252" });

    // Changed on disk meanwhile: the compare view shows the disk side decoded the same way.
    await page.keyboard.type(" mine");
    await page.locator(`.tab.dirty[data-synced="true"][data-path="${quotes}"]`).waitFor();
    writeHome(g, "quotes.txt", Buffer.from([0x93, 0x74, 0x68, 0x65, 0x69, 0x72, 0x73, 0x94, 0x20, 0x80, 0x0a]));
    const banner = page.locator("#conflict-banner");
    await banner.waitFor({ state: "visible" });
    await banner.locator('[data-action="compare"]').click();
    await until(async () => (await editorText(page, ".merge-overlay .cm-merge-a .cm-content")) === "\u201ctheirs\u201d \u20ac\n",
      { what: "the disk side in Windows-1252" });

    // A clean Latin-1 file rewritten outside in Windows-1252: it reloads, and the status bar says so.
    await page.keyboard.press("Escape");
    await openFromTree(page, g, "latin.txt");
    assert.equal(await page.locator("#encoding").innerText(), "ISO-8859-1");
    writeHome(g, "latin.txt", Buffer.from([0x80, 0x0a]));
    await until(async () => (await editorText(page)) === "\u20ac\n", { what: "the reload" });
    await until(async () => (await page.locator("#encoding").innerText()) === "Windows-1252", { what: "the new encoding shown" });
  });
});

test("previews: images as pictures (SVG never inline), Markdown beside its source and never raw HTML; Latin-1 text; binary said", async () => {
  const g = await new Gateway().start();
  const png = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAIAAAADCAYAAAC56t6BAAAAEklEQVR4nGP4z8DwHwyBNBAAAIlnC/WNnJ3hAAAAAElFTkSuQmCC", "base64");
  const gif = Buffer.from("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==", "base64");
  const write = (name, data) => {
    writeFileSync(join(g.home, name), data);
    ownToGateway(join(g.home, name));
  };
  write("dot.png", png);
  write("pixel.gif", gif);
  write("logo.svg", '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20" onload="window.__pwned=\'svg\'">' +
    '<script>window.__pwned="svg-script"</script><rect width="40" height="20" fill="red"/></svg>\n');
  write("README.md", "# Title\n\nSome *em*, **strong** and `code`.\n\n<script>window.__pwned='md'</script>\n\n" +
    "<img src=x onerror=\"window.__pwned='img'\">\n\n[bad](javascript:window.__pwned='link') and [good](https://example.com/)\n\n" +
    "- one\n- two\n\n```\nfenced <b>code</b>\n```\n");
  write("latin1.txt", Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0x6e, 0x61, 0xef, 0x76, 0x65, 0x20, 0x80, 0x0a]));
  write("data.bin", Buffer.from([0x00, 0x01, 0x02, 0xff, 0x00, 0x10]));
  await withBrowser("previews", g, async ({ newPage }) => {
    const page = await newPage();
    await openApp(page, g);
    const pwned = () => page.evaluate(() => window.__pwned ?? null);

    // Raster images are shown as pictures.
    for (const [name, w, h] of [["dot.png", 2, 3], ["pixel.gif", 1, 1]]) {
      await openFromTree(page, g, name);
      const img = page.locator("#editor-placeholder .image-preview img");
      await img.waitFor();
      await until(async () => (await img.evaluate((el) => el.complete && el.naturalWidth)) === w, { what: `${name} decoded` });
      assert.equal(await img.evaluate((el) => el.naturalHeight), h);
      assert.match(await img.getAttribute("src"), /^data:image\//);
    }
    await shot(page, "image-preview");

    // SVG: its source in the editor, its picture beside as an <img>: never inline, its scripts never run.
    await openFromTree(page, g, "logo.svg");
    await page.locator(editorContent).click();
    await page.keyboard.press("Control+Shift+V");
    const pane = page.locator(".preview-pane");
    const svgImg = pane.locator("img.preview-image");
    await svgImg.waitFor();
    await until(async () => (await svgImg.evaluate((el) => el.complete && el.naturalWidth)) === 40, { what: "the SVG drawn" });
    assert.equal(await page.locator("svg rect").count(), 0, "no SVG of the file in the page's DOM");
    assert.equal(await pwned(), null);

    // Markdown beside its source: structure rendered, raw HTML shown as text, unsafe links not links.
    await openFromTree(page, g, "README.md");
    await page.locator(editorContent).click();
    await page.keyboard.press("Control+Shift+V");
    await pane.locator("h1").waitFor();
    assert.equal(await pane.locator("h1").innerText(), "Title");
    assert.equal(await pane.locator("em").innerText(), "em");
    assert.equal(await pane.locator("strong").innerText(), "strong");
    assert.equal(await pane.locator("li").count(), 2);
    assert.match(await pane.locator("pre code").last().innerText(), /fenced <b>code<\/b>/);
    assert.equal(await pane.locator("script, img, iframe, b").count(), 0, "no element from the file's HTML");
    assert.match(await pane.innerText(), /<script>window.__pwned='md'<\/script>/);
    const hrefs = await pane.locator("a").evaluateAll((as) => as.map((a) => a.getAttribute("href")));
    assert.deepEqual(hrefs, ["https://example.com/"]);
    await pane.locator(".markdown-link", { hasText: "bad" }).click();
    assert.equal(await pwned(), null);
    // The preview follows typing.
    await page.keyboard.press("Control+Home");
    await page.locator(editorContent).click();
    await page.keyboard.press("Control+Home");
    await page.keyboard.type("## Added\n\n");
    await until(async () => (await pane.locator("h2").count()) === 1, { what: "the preview to follow the edit" });
    await shot(page, "markdown-preview");
    await page.keyboard.press("Control+Shift+V");
    await pane.waitFor({ state: "hidden" });

    // Latin-1 text opens as text, its encoding in the status bar; bytes that are no text say so.
    await openFromTree(page, g, "latin1.txt");
    await until(async () => (await editorText(page)) === "café naïve €\n", { what: "the Latin-1 text decoded" });
    assert.match(await page.locator("#encoding").innerText(), /Windows-1252/);
    await openFromTree(page, g, "data.bin");
    await until(async () => /binary file \(6 bytes\)/.test(await page.locator("#editor-placeholder").innerText()), { what: "binary said" });
    assert.equal(await page.locator("#encoding").innerText(), "Binary");
    assert.equal(await pwned(), null);
  });
});
