import { z } from 'zod';

/**
 * A page size given in the query string: decimal digits only, from 1 to `max`, else `fallback` when absent.
 * z.coerce.number() would also take "0x10", "1e2" and " 7 ", which no client means as a page size.
 */
export function pageSizeParam(max: number, fallback: number) {
  return z
    .string()
    .regex(/^\d{1,6}$/, `expected a whole number from 1 to ${max}, in decimal digits`)
    .transform(Number)
    .pipe(z.number().int().min(1).max(max))
    .default(fallback);
}
