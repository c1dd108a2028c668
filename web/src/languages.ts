// Syntax highlighting by file name.

import type { Extension } from "@codemirror/state";
import { StreamLanguage, type StreamParser } from "@codemirror/language";
import { cpp } from "@codemirror/lang-cpp";
import { css } from "@codemirror/lang-css";
import { go } from "@codemirror/lang-go";
import { html } from "@codemirror/lang-html";
import { java } from "@codemirror/lang-java";
import { javascript } from "@codemirror/lang-javascript";
import { json } from "@codemirror/lang-json";
import { markdown } from "@codemirror/lang-markdown";
import { python } from "@codemirror/lang-python";
import { rust } from "@codemirror/lang-rust";
import { sql } from "@codemirror/lang-sql";
import { yaml } from "@codemirror/lang-yaml";
import { shell } from "@codemirror/legacy-modes/mode/shell";
import { toml } from "@codemirror/legacy-modes/mode/toml";
import { dockerFile } from "@codemirror/legacy-modes/mode/dockerfile";

export interface Language {
  name: string;
  extension: () => Extension;
  /** The file is indented with tabs whatever its content says (Makefiles: recipes need them). */
  tabs?: boolean;
}

/** Makefiles: comments, variable references, assignments, rule targets and directives. */
const makefileParser: StreamParser<{ recipe: boolean }> = {
  name: "makefile",
  startState: () => ({ recipe: false }),
  token(stream, state) {
    if (stream.sol()) state.recipe = stream.peek() === "\t";
    if (stream.eatSpace()) return null;
    const ch = stream.peek();
    if (ch === "#") {
      stream.skipToEnd();
      return "comment";
    }
    if (ch === "$") {
      stream.next();
      if (stream.eat("(") || stream.eat("{")) stream.eatWhile(/[^)}]/), stream.next();
      else stream.next();
      return "variableName.special";
    }
    if (!state.recipe && stream.sol() && stream.match(/^(ifeq|ifneq|ifdef|ifndef|else|endif|include|-include|define|endef|export|override)\b/))
      return "keyword";
    if (!state.recipe && stream.match(/^[A-Za-z0-9_.\-/%]+(?=\s*(::?=|\?=|\+=|!=|=))/)) return "def";
    if (!state.recipe && stream.match(/^[^:#=\s$]+(?=\s*::?(?!=))/)) return "labelName";
    if (ch === '"' || ch === "'") {
      stream.next();
      while (!stream.eol() && stream.next() !== ch);
      return "string";
    }
    stream.next();
    return null;
  },
};

const byExtension: Record<string, Language> = {};
const byName: Record<string, Language> = {};
function add(name: string, extension: () => Extension, ...exts: string[]) {
  for (const e of exts) byExtension[e] = { name, extension };
}
const legacy = (parser: StreamParser<unknown>) => () => StreamLanguage.define(parser);
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
add("Java", java, "java");
add("Go", go, "go");
add("Rust", rust, "rs");
add("SQL", sql, "sql");
add("YAML", yaml, "yaml", "yml");
add("TOML", legacy(toml as StreamParser<unknown>), "toml");
add("Shell", legacy(shell as StreamParser<unknown>), "sh", "bash", "zsh", "ksh");
add("Dockerfile", legacy(dockerFile as StreamParser<unknown>), "dockerfile");
const makefile: Language = { name: "Makefile", extension: legacy(makefileParser as StreamParser<unknown>), tabs: true };
byExtension.mk = byExtension.mak = makefile;
byName.makefile = byName.gnumakefile = makefile;
byName.dockerfile = byExtension.dockerfile;
for (const n of [".bashrc", ".bash_profile", ".profile", ".bash_aliases", ".zshrc", "pkgbuild"]) byName[n] = byExtension.sh;

export function languageFor(path: string): Language | null {
  const name = path.slice(path.lastIndexOf("/") + 1);
  const lower = name.toLowerCase();
  if (byName[lower]) return byName[lower];
  // Dockerfile.dev, Containerfile
  if (lower.startsWith("dockerfile.") || lower === "containerfile") return byExtension.dockerfile;
  const dot = name.lastIndexOf(".");
  if (dot <= 0) return null;
  return byExtension[name.slice(dot + 1).toLowerCase()] ?? null;
}
