// Indentation detected from a file's own text: tabs, or the step its space-indented lines use.

/** The indent unit of `text`: "\t", or 2..8 spaces; `fallback` when the text does not say. */
export function detectIndent(text: string, fallback: string): string {
  let tabs = 0;
  let spaces = 0;
  const steps = new Map<number, number>();
  let previous = 0;
  let lines = 0;
  for (const line of text.split("\n")) {
    if (++lines > 2000) break;
    if (!line.trim()) continue;
    if (line[0] === "\t") {
      tabs++;
      previous = 0;
      continue;
    }
    const width = line.length - line.trimStart().length;
    if (width > 0 && line[0] === " ") spaces++;
    // A step in: how far this line is indented beyond the one before.
    const step = width - previous;
    if (step >= 2 && step <= 8) steps.set(step, (steps.get(step) ?? 0) + 1);
    previous = width;
  }
  if (tabs > spaces) return "\t";
  if (!spaces) return fallback;
  let best = 0;
  let count = 0;
  for (const [step, n] of steps) if (n > count || (n === count && step < best)) [best, count] = [step, n];
  return best ? " ".repeat(best) : fallback;
}

export function describeIndent(unit: string): string {
  return unit === "\t" ? "Tabs" : `Spaces: ${unit.length}`;
}
