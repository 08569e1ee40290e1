// Text from a cache or a registry (record keys, selectors, layer
// descriptions, tag names) shown to a person: in a terminal, a DOT or a
// Mermaid label. Such text may carry control characters (a NUL ends a DOT
// string, ESC drives the terminal, a newline forges an output line), bidi
// overrides that reorder what is seen, lone surrogates, or megabytes. One
// function makes it one visible, bounded line; each output format then
// escapes its own syntax on top.

/** Control (Cc), format (Cf: bidi overrides, zero-width), line/paragraph separators and lone surrogates. */
const UNPRINTABLE = /^[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]$/u;

/**
 * `text` as one line of visible characters: each unprintable one as
 * `\uXXXX`, and at most `max` UTF-16 units (cut with `…`, never inside a
 * character or an escape).
 */
export function printable(text: string, max = 200): string {
  let out = '';
  for (const ch of text) {
    const visible = UNPRINTABLE.test(ch) ? `\\u${ch.codePointAt(0)!.toString(16).padStart(4, '0')}` : ch;
    if (out.length + visible.length > max) return `${out}…`;
    out += visible;
  }
  return out;
}
