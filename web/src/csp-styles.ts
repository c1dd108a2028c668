// The gateway's Content-Security-Policy allows style sheets from the page's own origin only, so a
// <style> element a library inserts is ignored by the browser (and reported on the console).
// CodeMirror keeps its base theme in one (in <head>), xterm.js its cell sizes and colours. This mirrors each one inside `root` into a constructed style sheet
// (document.adoptedStyleSheets), which the policy does not govern because no markup is involved,
// and keeps the copy in step as the library rewrites the element.

export function adoptInlineStyles(root: HTMLElement): () => void {
  const sheets = new Map<HTMLStyleElement, CSSStyleSheet>();

  const sync = (el: HTMLStyleElement) => {
    let sheet = sheets.get(el);
    if (!sheet) {
      sheet = new CSSStyleSheet();
      sheets.set(el, sheet);
      document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
    }
    sheet.replaceSync(el.textContent ?? "");
  };
  const drop = (el: HTMLStyleElement) => {
    const sheet = sheets.get(el);
    if (!sheet) return;
    sheets.delete(el);
    document.adoptedStyleSheets = document.adoptedStyleSheets.filter((s) => s !== sheet);
  };
  const styleOf = (node: Node | null): HTMLStyleElement | null => {
    for (let n = node; n; n = n.parentNode) if (n instanceof HTMLStyleElement) return n;
    return null;
  };

  for (const el of root.querySelectorAll("style")) sync(el);
  const observer = new MutationObserver((records) => {
    const touched = new Set<HTMLStyleElement>();
    for (const r of records) {
      const target = styleOf(r.target);
      if (target) touched.add(target);
      for (const n of r.addedNodes) {
        if (n instanceof HTMLStyleElement) touched.add(n);
        else if (n instanceof HTMLElement) for (const s of n.querySelectorAll("style")) touched.add(s);
      }
      for (const n of r.removedNodes) {
        if (n instanceof HTMLStyleElement) drop(n);
        else if (n instanceof HTMLElement) for (const s of n.querySelectorAll("style")) drop(s);
      }
    }
    for (const el of touched) if (el.isConnected) sync(el);
  });
  observer.observe(root, { childList: true, subtree: true, characterData: true });
  return () => {
    observer.disconnect();
    for (const el of [...sheets.keys()]) drop(el);
  };
}
