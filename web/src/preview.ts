// Previews: Markdown rendered beside its source, SVG and raster images as pictures. Nothing from
// the file ever becomes markup: Markdown is parsed (@lezer/markdown) and each node built as a DOM
// element in code, raw HTML in it shown as text; pictures are <img> elements with data: URLs, in
// which an SVG's scripts never run (and the page's CSP allows images from data: only).

import { parser as markdownParser, GFM } from "@lezer/markdown";
import type { SyntaxNode } from "@lezer/common";
import { h } from "./dom";

const md = markdownParser.configure(GFM);

const IMAGE_TYPES: Record<string, string> = {
  png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", gif: "image/gif", webp: "image/webp", bmp: "image/bmp",
  ico: "image/x-icon", svg: "image/svg+xml",
};

function extension(path: string): string {
  const name = path.slice(path.lastIndexOf("/") + 1);
  const dot = name.lastIndexOf(".");
  return dot > 0 ? name.slice(dot + 1).toLowerCase() : "";
}

/** The MIME type of an image file, by its name; null for anything else. */
export function imageType(path: string): string | null {
  return IMAGE_TYPES[extension(path)] ?? null;
}

export function isMarkdown(path: string): boolean {
  return ["md", "markdown"].includes(extension(path));
}

/** Text files with a preview beside their source. */
export function hasSidePreview(path: string): boolean {
  return isMarkdown(path) || extension(path) === "svg";
}

export function imageElement(type: string, base64: string, alt: string): HTMLImageElement {
  const img = h("img", { class: "preview-image", alt, src: `data:${type};base64,${base64}` });
  return img;
}

function utf8ToBase64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

/** The side preview of `text` (Markdown or SVG source) for the file `path`. */
export function renderPreview(path: string, text: string): HTMLElement {
  if (extension(path) === "svg")
    return h("div", { class: "preview-picture" }, imageElement("image/svg+xml", utf8ToBase64(text), path));
  return renderMarkdown(text);
}

const BLOCKS: Record<string, string> = {
  Paragraph: "p", Blockquote: "blockquote", BulletList: "ul", OrderedList: "ol", ListItem: "li",
  ATXHeading1: "h1", ATXHeading2: "h2", ATXHeading3: "h3", ATXHeading4: "h4", ATXHeading5: "h5", ATXHeading6: "h6",
  SetextHeading1: "h1", SetextHeading2: "h2", Emphasis: "em", StrongEmphasis: "strong", Strikethrough: "del",
  Table: "table", TableHeader: "tr", TableRow: "tr",
};
/** Syntax that is not content: the marks around it. */
const MARKS = new Set(["HeaderMark", "EmphasisMark", "CodeMark", "LinkMark", "ListMark", "QuoteMark", "CodeInfo",
  "StrikethroughMark", "TableDelimiter", "URL", "LinkTitle", "LinkLabel", "TaskMarker"]);

export function renderMarkdown(text: string): HTMLElement {
  const root = h("div", { class: "markdown-body" });
  const tree = md.parse(text);
  const top = tree.topNode;
  for (let c = top.firstChild; c; c = c.nextSibling) {
    const el = block(c, text);
    if (el) root.append(el);
  }
  return root;
}

function safeHref(url: string): string | null {
  const u = url.trim();
  if (/^(https?:|mailto:)/i.test(u)) return u;
  if (/^[a-z][a-z0-9+.-]*:/i.test(u)) return null; // javascript:, data: and every other scheme
  return null; // relative links lead into the IDE's own origin: shown, not followed
}

function block(node: SyntaxNode, text: string): Node | null {
  const name = node.name;
  if (name === "FencedCode" || name === "CodeBlock") {
    const code = [];
    for (let c = node.firstChild; c; c = c.nextSibling) if (c.name === "CodeText") code.push(text.slice(c.from, c.to));
    const body = name === "FencedCode" ? code.join("") : text.slice(node.from, node.to).replace(/^ {4}/gm, "");
    return h("pre", {}, h("code", { text: body }));
  }
  if (name === "HorizontalRule") return h("hr");
  if (name === "HTMLBlock" || name === "CommentBlock" || name === "ProcessingInstructionBlock")
    return h("pre", { class: "markdown-html" }, h("code", { text: text.slice(node.from, node.to) }));
  if (name === "LinkReference") return null;
  const tag = BLOCKS[name];
  if (name === "TableCell") {
    const inHeader = node.parent?.name === "TableHeader";
    return inline(h(inHeader ? "th" : "td"), node, text);
  }
  if (!tag) return inline(h("span"), node, text);
  const el = h(tag as keyof HTMLElementTagNameMap);
  if (["ul", "ol", "blockquote", "li", "table", "tr"].includes(tag)) {
    // Containers: blocks inside; a list item's or a tight list's paragraph text stays inline.
    let last = node.from;
    for (let c = node.firstChild; c; c = c.nextSibling) {
      if (tag === "li" && c.name !== "Paragraph" && !MARKS.has(c.name) && c.name !== "Task" && c.from > last)
        el.append(text.slice(last, c.from).trim());
      if (c.name === "Task") {
        const box = h("input", { type: "checkbox", disabled: true });
        box.checked = /\[[xX]\]/.test(text.slice(c.from, c.to));
        el.append(box, inline(h("span"), c, text));
      } else if (!MARKS.has(c.name)) {
        const child = block(c, text);
        if (child) el.append(child);
      }
      last = c.to;
    }
    return el;
  }
  return inline(el, node, text);
}

/** The inline content of node into el: text between children, children by kind, marks left out. */
function inline(el: HTMLElement, node: SyntaxNode, text: string): HTMLElement {
  let pos = node.from;
  // Headings and paragraphs: leading marks and their space are not text.
  for (let c = node.firstChild; c; c = c.nextSibling) {
    if (c.from > pos) el.append(clean(text.slice(pos, c.from), el, pos === node.from));
    el.append(...inlineNode(c, text));
    pos = c.to;
  }
  if (node.to > pos) el.append(clean(text.slice(pos, node.to), el, pos === node.from));
  return el;
}

function clean(s: string, el: HTMLElement, atStart: boolean): string {
  let t = s.replace(/\n[ \t]*(> ?)?/g, "\n");
  if (atStart || /^H[1-6]$/.test(el.tagName)) t = t.replace(/^[ \t]+/, "");
  return t;
}

function inlineNode(node: SyntaxNode, text: string): Node[] {
  const name = node.name;
  if (MARKS.has(name)) return [];
  if (name === "InlineCode") {
    const inner = text.slice(node.from, node.to).replace(/^`+|`+$/g, "");
    return [h("code", { text: inner })];
  }
  if (name === "Escape") return [document.createTextNode(text.slice(node.from + 1, node.to))];
  if (name === "Entity") return [document.createTextNode(text.slice(node.from, node.to))];
  if (name === "HardBreak") return [h("br")];
  if (name === "HTMLTag" || name === "Comment" || name === "ProcessingInstruction")
    return [h("code", { class: "markdown-html", text: text.slice(node.from, node.to) })];
  if (name === "Link" || name === "Image") {
    const urlNode = node.getChild("URL");
    const url = urlNode ? text.slice(urlNode.from, urlNode.to).replace(/^<|>$/g, "") : "";
    const label = inline(h("span"), node, text);
    if (name === "Image") return [h("span", { class: "markdown-image", title: url, text: `[image: ${label.textContent || url}]` })];
    const href = safeHref(url);
    if (!href) return [h("span", { class: "markdown-link", title: url }, ...label.childNodes)];
    return [h("a", { href, target: "_blank", rel: "noopener noreferrer" }, ...label.childNodes)];
  }
  if (name === "Autolink" || name === "URL") {
    const url = text.slice(node.from, node.to).replace(/^<|>$/g, "");
    const href = safeHref(url);
    return [href ? h("a", { href, target: "_blank", rel: "noopener noreferrer", text: url }) : document.createTextNode(url)];
  }
  const tag = BLOCKS[name];
  if (tag) return [inline(h(tag as keyof HTMLElementTagNameMap), node, text)];
  return [inline(h("span"), node, text)];
}
