/** A UTF-16 high surrogate not followed by a low one, or a low one not preceded by a high one. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, 'g');

/** Whether `s` holds a lone surrogate: not text, and stored by PostgreSQL as U+FFFD. */
export const hasLoneSurrogate = (s: string): boolean => LONE_SURROGATE.test(s);

/** `s` with every lone surrogate replaced by U+FFFD, as PostgreSQL would store it. */
export const replaceLoneSurrogates = (s: string): string => s.replace(LONE_SURROGATES, '\ufffd');
