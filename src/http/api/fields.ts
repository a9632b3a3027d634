import { z } from 'zod';
import { CONTROL_CHARACTERS_MESSAGE, isCleanText } from '../../core/content/text.ts';

/**
 * The string fields of management-API bodies. Every string a body carries is one of these, so
 * that no control character (NUL included) or lone surrogate reaches the stores: 400 INVALID.
 */
export const Text = z.string().refine((s) => isCleanText(s), CONTROL_CHARACTERS_MESSAGE);

/** A text that may span lines (a description): tab, LF and CR allowed, other controls not. */
export const MultilineText = z.string().refine((s) => isCleanText(s, { multiline: true }), CONTROL_CHARACTERS_MESSAGE);

/** Milliseconds since the epoch as ISO 8601 in answers; null stays null (typed so, for the UI's types). */
export function iso(t: number): string;
export function iso(t: number | null): string | null;
export function iso(t: number | null): string | null {
  return t === null ? null : new Date(t).toISOString();
}
