/**
 * JSON in TEXT columns: written with `jsonText`, read back once, at the store's edge, through a
 * zod schema, so nothing outside the store sees column text or casts parsed JSON.
 */
import type { z } from 'zod';

/** The text stored in a JSON column for `value`. */
export function jsonText(value: unknown): string {
  return JSON.stringify(value);
}

/**
 * Parses JSON column `column` of the stored `owner` (for the message, e.g. "node 3f2a…") with
 * `schema`; a NULL column is parsed as `null`. Returns the parsed value. Throws an Error naming the
 * column when the text is not what this store writes (a damaged or hand-edited database).
 */
export function parseColumn<S extends z.ZodType>(
  schema: S,
  text: string | null,
  column: string,
  owner: string,
): z.output<S> {
  let value: unknown = null;
  if (text !== null) {
    try {
      value = JSON.parse(text);
    } catch {
      throw new Error(`stored ${owner} has a column ${column} that is not JSON`);
    }
  }
  return parseValue(schema, value, column, owner);
}

/** Checks plain column `column` of the stored `owner` with `schema`, as `parseColumn` does. */
export function parseValue<S extends z.ZodType>(
  schema: S,
  value: unknown,
  column: string,
  owner: string,
): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success)
    throw new Error(
      `stored ${owner} has a bad column ${column}: ${r.error.issues[0]?.message ?? 'invalid'}`,
    );
  return r.data;
}
