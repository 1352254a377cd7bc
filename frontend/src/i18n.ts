/**
 * All user-visible text comes from the server (web/canvas_strings.py), already translated.
 * A missing key shows as the key itself, so a gap is visible rather than silently English.
 */
export type Translate = (key: string, params?: Record<string, string | number>) => string;

export function translator(strings: Record<string, string>): Translate {
  return (key, params) => {
    const text = strings[key] ?? key;
    if (!params) return text;
    return text.replace(/\{(\w+)\}/g, (whole, name: string) =>
      name in params ? String(params[name]) : whole,
    );
  };
}

/** Marks a key for translation later (in tables built before the translator exists). */
export function msg(key: string): string {
  return key;
}
