// CodeMirror's dark look, as a CodeMirror theme: it is injected the same way as CodeMirror's base
// theme and so takes precedence over it, which a plain style sheet would not.

import { EditorView } from "@codemirror/view";
import { HighlightStyle, syntaxHighlighting } from "@codemirror/language";
import { tags as t } from "@lezer/highlight";

const editorTheme = EditorView.theme(
  {
    "&": { height: "100%", backgroundColor: "#1e1e1e", color: "#d4d4d4", fontSize: "14px" },
    "&.cm-focused": { outline: "none" },
    ".cm-scroller": { fontFamily: 'ui-monospace, "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace', lineHeight: "1.5" },
    ".cm-content": { caretColor: "#aeafad" },
    ".cm-cursor, .cm-dropCursor": { borderLeftColor: "#aeafad" },
    "&.cm-focused > .cm-scroller > .cm-selectionLayer .cm-selectionBackground, .cm-selectionBackground, .cm-content ::selection":
      { backgroundColor: "#264f78" },
    ".cm-gutters": { backgroundColor: "#1e1e1e", color: "#858585", border: "none" },
    ".cm-activeLineGutter": { backgroundColor: "transparent", color: "#c6c6c6" },
    ".cm-activeLine": { backgroundColor: "rgba(255, 255, 255, 0.04)" },
    ".cm-selectionMatch": { backgroundColor: "rgba(173, 214, 255, 0.15)" },
    "&.cm-focused .cm-matchingBracket, .cm-matchingBracket": { backgroundColor: "rgba(255, 255, 255, 0.1)", outline: "1px solid #888" },
    ".cm-foldPlaceholder": { backgroundColor: "#3a3d41", border: "none", color: "#cccccc" },
    ".cm-panels": { backgroundColor: "#252526", color: "#cccccc" },
    ".cm-panels.cm-panels-bottom": { borderTop: "1px solid #3c3c3c" },
    ".cm-textfield": { backgroundColor: "#3c3c3c", border: "1px solid #3c3c3c", color: "#cccccc" },
    ".cm-button": { backgroundImage: "none", backgroundColor: "#3a3d41", color: "#cccccc", border: "none" },
    ".cm-tooltip": { backgroundColor: "#252526", border: "1px solid #454545", color: "#cccccc" },
    ".cm-tooltip-autocomplete > ul > li[aria-selected]": { backgroundColor: "#04395e", color: "#ffffff" },
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
  { tag: t.keyword, color: "#569cd6" },
  { tag: [t.controlKeyword, t.moduleKeyword], color: "#c586c0" },
  { tag: [t.name, t.deleted, t.character, t.macroName], color: "#9cdcfe" },
  { tag: [t.propertyName], color: "#9cdcfe" },
  { tag: [t.function(t.variableName), t.function(t.propertyName), t.labelName], color: "#dcdcaa" },
  { tag: [t.color, t.constant(t.name), t.standard(t.name)], color: "#4fc1ff" },
  { tag: [t.definition(t.name), t.separator], color: "#d4d4d4" },
  { tag: [t.typeName, t.className, t.namespace, t.changed, t.annotation, t.modifier, t.self], color: "#4ec9b0" },
  { tag: [t.number], color: "#b5cea8" },
  { tag: [t.operator, t.operatorKeyword, t.url, t.escape, t.regexp, t.link, t.special(t.string)], color: "#d7ba7d" },
  { tag: [t.meta, t.comment], color: "#6a9955" },
  { tag: [t.processingInstruction], color: "#c586c0" },
  { tag: t.strong, fontWeight: "bold" },
  { tag: t.emphasis, fontStyle: "italic" },
  { tag: t.strikethrough, textDecoration: "line-through" },
  { tag: t.link, textDecoration: "underline" },
  { tag: t.heading, fontWeight: "bold", color: "#569cd6" },
  { tag: [t.atom, t.bool, t.special(t.variableName)], color: "#569cd6" },
  { tag: [t.string, t.inserted], color: "#ce9178" },
  { tag: t.invalid, color: "#f44747" },
]);

export const darkTheme = [editorTheme, syntaxHighlighting(highlight)];
