/**
 * Text from outside (names, references, usernames, management-API fields, headers) must be
 * plain text before anything stores or records it (docs/security.md, "Input at the edge"):
 * no C0 control characters (NUL included), no DEL, no C1 controls (U+0080–U+009F), no lone
 * UTF-16 surrogates (they cannot be encoded as UTF-8: PostgreSQL and the event stream would
 * get a different string than the one checked). Multi-line fields may keep tab, LF and CR.
 */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const CONTROL_BUT_WHITESPACE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

export const CONTROL_CHARACTERS_MESSAGE = 'must not contain control characters (NUL, C0, DEL, C1) or invalid Unicode';

/** Whether `s` is free of control characters and lone surrogates (`multiline`: tab, LF, CR allowed). */
export function isCleanText(s: string, opts: { multiline?: boolean } = {}): boolean {
  return !(opts.multiline ? CONTROL_BUT_WHITESPACE : CONTROL).test(s) && !LONE_SURROGATE.test(s);
}

const CONTROL_ALL = /[\u0000-\u001f\u007f-\u009f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** `s` with every control character and lone surrogate replaced by U+FFFD (for records, never for names). */
export function sanitiseText(s: string): string {
  return s.replace(CONTROL_ALL, '\ufffd');
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/** Bytes as UTF-8, or undefined when they are not valid UTF-8. */
export function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return STRICT_UTF8.decode(bytes);
  } catch {
    return undefined;
  }
}
