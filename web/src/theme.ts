// CodeMirror's look, as a CodeMirror theme whose colours are the page's CSS variables (app.css: dark,
// light and high contrast): it is injected the same way as CodeMirror's base
// theme and so takes precedence over it, which a plain style sheet would not.

import { EditorView } from "@codemirror/view";
import { HighlightStyle, syntaxHighlighting } from "@codemirror/language";
import { tags as t } from "@lezer/highlight";

const editorTheme = EditorView.theme(
  {
    "&": { height: "100%", backgroundColor: "var(--cm-bg)", color: "var(--cm-fg)", fontSize: "var(--editor-font-size, 14px)" },
    "&.cm-focused": { outline: "none" },
    ".cm-scroller": { fontFamily: 'ui-monospace, "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace', lineHeight: "1.5" },
    ".cm-content": { caretColor: "var(--cm-cursor)" },
    ".cm-cursor, .cm-dropCursor": { borderLeftColor: "var(--cm-cursor)" },
    "&.cm-focused > .cm-scroller > .cm-selectionLayer .cm-selectionBackground, .cm-selectionBackground, .cm-content ::selection":
      { backgroundColor: "var(--cm-selection)" },
    ".cm-gutters": { backgroundColor: "var(--cm-bg)", color: "var(--cm-gutter-fg)", border: "none" },
    ".cm-activeLineGutter": { backgroundColor: "transparent", color: "var(--cm-gutter-active)" },
    ".cm-activeLine": { backgroundColor: "var(--cm-active-line)" },
    ".cm-selectionMatch": { backgroundColor: "rgba(173, 214, 255, 0.15)" },
    "&.cm-focused .cm-matchingBracket, .cm-matchingBracket": { backgroundColor: "rgba(255, 255, 255, 0.1)", outline: "1px solid #888" },
    ".cm-foldPlaceholder": { backgroundColor: "var(--cm-button-bg)", border: "none", color: "var(--cm-panel-fg)" },
    ".cm-panels": { backgroundColor: "var(--cm-panel-bg)", color: "var(--cm-panel-fg)" },
    ".cm-panels.cm-panels-bottom": { borderTop: "1px solid var(--cm-field-bg)" },
    ".cm-textfield": { backgroundColor: "var(--cm-field-bg)", border: "1px solid var(--cm-field-bg)", color: "var(--cm-panel-fg)" },
    ".cm-button": { backgroundImage: "none", backgroundColor: "var(--cm-button-bg)", color: "var(--cm-panel-fg)", border: "none" },
    ".cm-tooltip": { backgroundColor: "var(--cm-panel-bg)", border: "1px solid var(--cm-field-bg)", color: "var(--cm-panel-fg)" },
    ".cm-tooltip-autocomplete > ul > li[aria-selected]": { backgroundColor: "var(--cm-selection)", color: "var(--cm-fg-bright)" },
    ".cm-searchMatch": { backgroundColor: "rgba(234, 92, 0, 0.33)" },
    ".cm-searchMatch.cm-searchMatch-selected": { backgroundColor: "rgba(81, 92, 106, 0.8)" },
    ".cm-specialChar": { color: "#f48771" },
    // Compare view
    "&.cm-merge-a .cm-changedLine, .cm-deletedChunk": { backgroundColor: "rgba(255, 0, 0, 0.12)" },
    "&.cm-merge-b .cm-changedLine, .cm-insertedLine": { backgroundColor: "rgba(0, 255, 0, 0.1)" },
    "&.cm-merge-a .cm-changedText": { background: "rgba(255, 60, 60, 0.3)" },
    "&.cm-merge-b .cm-changedText": { background: "rgba(60, 255, 60, 0.25)" },
  },
  { dark: true },
);

const highlight = HighlightStyle.define([
  { tag: t.keyword, color: "var(--hl-keyword)" },
  { tag: [t.controlKeyword, t.moduleKeyword], color: "var(--hl-control)" },
  { tag: [t.name, t.deleted, t.character, t.macroName], color: "var(--hl-name)" },
  { tag: [t.propertyName], color: "var(--hl-name)" },
  { tag: [t.function(t.variableName), t.function(t.propertyName), t.labelName], color: "var(--hl-function)" },
  { tag: [t.color, t.constant(t.name), t.standard(t.name)], color: "var(--hl-constant)" },
  { tag: [t.definition(t.name), t.separator], color: "var(--hl-plain)" },
  { tag: [t.typeName, t.className, t.namespace, t.changed, t.annotation, t.modifier, t.self], color: "var(--hl-type)" },
  { tag: [t.number], color: "var(--hl-number)" },
  { tag: [t.operator, t.operatorKeyword, t.url, t.escape, t.regexp, t.link, t.special(t.string)], color: "var(--hl-operator)" },
  { tag: [t.meta, t.comment], color: "var(--hl-comment)" },
  { tag: [t.processingInstruction], color: "var(--hl-control)" },
  { tag: t.strong, fontWeight: "bold" },
  { tag: t.emphasis, fontStyle: "italic" },
  { tag: t.strikethrough, textDecoration: "line-through" },
  { tag: t.link, textDecoration: "underline" },
  { tag: t.heading, fontWeight: "bold", color: "var(--hl-keyword)" },
  { tag: [t.atom, t.bool, t.special(t.variableName)], color: "var(--hl-keyword)" },
  { tag: [t.string, t.inserted], color: "var(--hl-string)" },
  { tag: t.invalid, color: "var(--hl-invalid)" },
]);

export const editorLook = [editorTheme, syntaxHighlighting(highlight)];
