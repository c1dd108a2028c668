// Screenshots of the page's main screens, for the documentation (docs/screenshots/): a real gateway,
// worker and search service with a small C project, driven in Chromium like the browser tests.
// Not a test: nothing here passes or fails; it stops at the first screen it cannot reach.
//
// Usage: node tests/browser/screenshots.mjs [OUTPUT_DIR]      (default: docs/screenshots)
// after `ninja -C build` (the gateway, the worker and the staged page) and tools/browser-deps build;
// HELIOS_BUILD_DIR names another build directory.

import { copyFileSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { once } from "node:events";
import { join, resolve } from "node:path";
import { Gateway, closeBrowser, ownToGateway, until, withBrowser } from "./harness.mjs";

const here = new URL(".", import.meta.url).pathname;
const out = resolve(process.argv[2] ?? join(here, "../../docs/screenshots"));
const service = resolve(here, "../../services/search/helios-search.py");
const size = { width: 1200, height: 720 };

function writeHome(g, relative, content) {
  mkdirSync(join(g.home, relative, ".."), { recursive: true });
  writeFileSync(join(g.home, relative), content);
  const parts = relative.split("/");
  for (let i = 1; i <= parts.length; i++) ownToGateway(join(g.home, ...parts.slice(0, i)));
}

const files = {
  ".gitignore": ".config/\n.local/\nbuild/\n*.o\n",
  "lab3/Makefile": "CFLAGS = -Wall -Wextra -g\n\nlist: main.o list.o\n\t$(CC) $(CFLAGS) -o $@ $^\n\nclean:\n\trm -f list *.o\n",
  "lab3/list.h": `#ifndef LIST_H
#define LIST_H

#include <stddef.h>

struct node {
    int value;
    struct node *next;
};

struct list {
    struct node *head;
    size_t length;
};

void list_push(struct list *l, int value);
int list_pop(struct list *l, int *value);
void list_free(struct list *l);

#endif
`,
  "lab3/list.c": `#include <stdlib.h>
#include "list.h"

/* Put value in front of the list. */
void list_push(struct list *l, int value)
{
    struct node *n = malloc(sizeof *n);
    if (!n)
        abort();
    n->value = value;
    n->next = l->head;
    l->head = n;
    l->length++;
}

/* Take the first value; 0 if the list was empty. */
int list_pop(struct list *l, int *value)
{
    struct node *n = l->head;
    if (!n)
        return 0;
    *value = n->value;
    l->head = n->next;
    l->length--;
    free(n);
    return 1;
}

void list_free(struct list *l)
{
    int ignored;
    while (list_pop(l, &ignored))
        ;
}
`,
  "lab3/main.c": `#include <stdio.h>
#include "list.h"

int main(void)
{
    struct list numbers = { 0 };

    for (int i = 1; i <= 5; i++)
        list_push(&numbers, i * i);

    printf("%zu numbers:", numbers.length);
    int v;
    while (list_pop(&numbers, &v))
        printf(" %d", v);
    printf("\\n");

    list_free(&numbers);
    return 0;
}
`,
  "lab3/README.md": `# Lab 3: linked lists

Build with \`make\`, run with \`./list\`.

## Tasks

1. Write \`list_push\` and \`list_pop\` in *list.c*.
2. Free every node in \`list_free\`.
3. Check with \`valgrind ./list\` that nothing leaks.

| function | returns |
|---|---|
| \`list_pop\` | 1, or 0 when empty |
| \`list_push\` | nothing |

> Tip: draw the list on paper before writing the pointers.
`,
  "lab2/hello.py": "def greet(name):\n    return f\"Hello, {name}!\"\n\n\nif __name__ == \"__main__\":\n    print(greet(\"world\"))\n",
  "notes.md": "# Notes\n\n- lab 3 due Friday\n",
};

async function shot(page, name) {
  const path = join(out, `${name}.png`);
  await page.screenshot({ path });
  console.log(`${path}: ${Math.round(statSync(path).size / 1024)} KiB`);
}

async function openFile(page, g, relative) {
  await page.keyboard.press("Control+P");
  await page.locator(".quick-open .palette-input").fill(relative);
  const item = page.locator(`.quick-open-item[data-path="${g.home}/${relative}"]`);
  await item.waitFor({ timeout: 20_000 });
  await item.click();
  await page.locator(`.tab.active[data-path="${g.home}/${relative}"]`).waitFor();
}

async function main() {
  mkdirSync(out, { recursive: true });
  const g = new Gateway({ args: ["--preview-listen", "127.0.0.1:0"] });
  // A student's web app on a loopback port, for the Ports dialog and its preview.
  const app = createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    res.end(`<!doctype html><meta charset="utf-8"><title>Lab 3 scores</title>
<body style="font:16px system-ui;margin:2em"><h1>Lab 3 scores</h1><p>Served by the student's own server,
on an origin of its own.</p><table border="1" cellpadding="6"><tr><th>test</th><th>result</th></tr>
<tr><td>list_push</td><td>pass</td></tr><tr><td>list_pop</td><td>pass</td></tr></table></body>`);
  });
  app.listen(0, "127.0.0.1");
  await once(app, "listening");
  writeHome(g, ".local/lib/helios-search.py", "");
  copyFileSync(service, join(g.home, ".local/lib/helios-search.py"));
  writeHome(g, ".config/helios/services/search.json",
    JSON.stringify({ exec: ["/usr/bin/python3", join(g.home, ".local/lib/helios-search.py")], topics: ["search:*"] }));
  for (const [path, content] of Object.entries(files)) writeHome(g, path, content);
  await g.start();
  await withBrowser("screenshots", g, async ({ newPage }) => {
    const page = await newPage();
    await page.setViewportSize(size);
    await page.goto(g.url);
    await page.locator('#link[data-state="connected"]').waitFor({ timeout: 15_000 });

    // The editor with the explorer and a terminal.
    await page.locator(`.tree-row[data-path="${g.home}/lab3"]`).click();
    await page.locator(`.tree-row[data-path="${g.home}/lab3/list.c"]`).click();
    await page.locator(`.tab.active[data-path="${g.home}/lab3/list.c"]`).waitFor();
    await page.keyboard.press("Control+`");
    await page.locator(".terminal-view:not([hidden]) .xterm-rows").waitFor();
    await until(async () => /[$#]\s*$/m.test(await page.locator(".terminal-view:not([hidden]) .xterm-rows").innerText()), { what: "a prompt" });
    await page.locator(".terminal-view:not([hidden]) .xterm-screen").click();
    await page.keyboard.type("cd lab3 && ls -l && wc -l *.c");
    await page.keyboard.press("Enter");
    await until(async () => /total$/m.test(await page.locator(".terminal-view:not([hidden]) .xterm-rows").innerText()), { what: "wc's total" });
    await page.locator(".cm-content").click();
    await shot(page, "editor");

    // Search across files.
    await page.keyboard.press("Control+Shift+F");
    await page.locator(".search-query").fill("list_pop");
    await page.locator(".search-query").press("Enter");
    await page.locator('.search-summary[data-state="done"]').waitFor({ timeout: 20_000 });
    await page.locator('.search-match[data-path="lab3/main.c"]').click();
    await page.locator(`.tab.active[data-path="${g.home}/lab3/main.c"]`).waitFor();
    await shot(page, "search");

    // Quick open.
    await page.keyboard.press("Control+`");
    await page.keyboard.press("Control+P");
    await page.locator(".quick-open .palette-input").pressSequentially("lst");
    await page.locator(".quick-open-note").waitFor({ state: "hidden", timeout: 20_000 });
    await shot(page, "quick-open");
    await page.keyboard.press("Escape");

    // The command palette.
    await page.keyboard.press("Control+Shift+P");
    await page.locator(".palette-input").waitFor();
    await shot(page, "command-palette");
    await page.keyboard.press("Escape");

    // The conflict banner and the compare view.
    await page.keyboard.press("Control+Shift+E");
    await openFile(page, g, "notes.md");
    await page.locator(".cm-content").click();
    await page.keyboard.press("Control+End");
    await page.keyboard.type("- read chapter 4\n");
    await page.locator(`.tab.dirty[data-synced="true"][data-path="${g.home}/notes.md"]`).waitFor();
    writeHome(g, "notes.md", "# Notes\n\n- lab 3 due Friday\n- lab 4 due next Friday\n");
    await page.locator("#conflict-banner").waitFor({ state: "visible" });
    await shot(page, "conflict-banner");
    await page.locator('#conflict-banner [data-action="compare"]').click();
    await page.locator(".merge-overlay .cm-merge-a").waitFor();
    await shot(page, "compare-view");
    await page.locator('.merge-overlay [data-action="keep"]').click();
    await page.locator(".merge-overlay").waitFor({ state: "detached" });

    // Settings, switched to the light theme.
    await page.keyboard.press("Control+,");
    await page.locator("#setting-theme").selectOption("light");
    await until(() => page.evaluate(() => document.documentElement.dataset.theme === "light"), { what: "the light theme" });
    await shot(page, "settings");
    await page.keyboard.press("Escape");

    // The Markdown preview (in the light theme).
    await openFile(page, g, "lab3/README.md");
    await page.locator(".cm-content").click();
    await page.keyboard.press("Control+Shift+V");
    await page.locator(".preview-pane").waitFor();
    await shot(page, "markdown-preview");

    // A phone: 390 px, the search panel over the editor, then the editor alone.
    await page.locator("#setting-theme").waitFor({ state: "detached" }).catch(() => undefined);
    await page.keyboard.press("Control+,");
    await page.locator("#setting-theme").selectOption("dark");
    await page.keyboard.press("Escape");
    await page.setViewportSize({ width: 390, height: 780 });
    await openFile(page, g, "lab3/main.c");
    await shot(page, "narrow-editor");
    await page.keyboard.press("Control+Shift+F");
    await page.locator(".search-query").fill("length");
    await page.locator(".search-query").press("Enter");
    await page.locator('.search-summary[data-state="done"]').waitFor({ timeout: 20_000 });
    await page.locator(".search-query").blur();
    await shot(page, "narrow-search");

    // The Ports dialog, and the student's app opened from it on the preview origin.
    await page.setViewportSize(size);
    await page.keyboard.press("Escape");
    await page.locator("#open-ports").click();
    const open = page.locator(`.ports-open[data-port="${app.address().port}"]`);
    await open.waitFor({ timeout: 10_000 });
    await shot(page, "ports");
    const [preview] = await Promise.all([page.context().waitForEvent("page"), open.click()]);
    await preview.setViewportSize({ width: 800, height: 400 });
    await preview.locator("h1").waitFor({ timeout: 15_000 });
    await shot(preview, "preview");
  });
  app.close();
}

try {
  await main();
} finally {
  await closeBrowser();
}
