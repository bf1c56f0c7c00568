const pluralRules = new Intl.PluralRules('en');

/** `1 ticket`, `2 tickets`, `0 tickets`; `plural` for nouns that do not just take an `s`. */
export function count(n: number, singular: string, plural = `${singular}s`): string {
  return `${n} ${noun(n, singular, plural)}`;
}

/** The form of a noun that goes with `n`, for phrases like `3/4 labelled tickets`. */
export function noun(n: number, singular: string, plural = `${singular}s`): string {
  return pluralRules.select(n) === 'one' ? singular : plural;
}

/**
 * A duration for people: `45s`, `23m05s`, `1h02m`. Rounded up to whole seconds before it is split into units, so
 * the seconds never read 60; an hour or more is shown to the minute, rounded up.
 */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  const m = Math.ceil(s / 60);
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
