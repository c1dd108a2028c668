// Syntax highlighting by file name.

import type { Extension } from "@codemirror/state";
import { cpp } from "@codemirror/lang-cpp";
import { css } from "@codemirror/lang-css";
import { html } from "@codemirror/lang-html";
import { javascript } from "@codemirror/lang-javascript";
import { json } from "@codemirror/lang-json";
import { markdown } from "@codemirror/lang-markdown";
import { python } from "@codemirror/lang-python";

interface Language {
  name: string;
  extension: () => Extension;
}

const byExtension: Record<string, Language> = {};
function add(name: string, extension: () => Extension, ...exts: string[]) {
  for (const e of exts) byExtension[e] = { name, extension };
}
add("C/C++", cpp, "c", "h", "cc", "cpp", "cxx", "hh", "hpp", "hxx", "ino");
add("CSS", css, "css");
add("HTML", html, "html", "htm");
add("JavaScript", () => javascript(), "js", "mjs", "cjs");
add("JSX", () => javascript({ jsx: true }), "jsx");
add("TypeScript", () => javascript({ typescript: true }), "ts", "mts", "cts");
add("TSX", () => javascript({ typescript: true, jsx: true }), "tsx");
add("JSON", json, "json");
add("Markdown", markdown, "md", "markdown");
add("Python", python, "py", "pyw");

export function languageFor(path: string): Language | null {
  const name = path.slice(path.lastIndexOf("/") + 1);
  const dot = name.lastIndexOf(".");
  if (dot <= 0) return null;
  return byExtension[name.slice(dot + 1).toLowerCase()] ?? null;
}
