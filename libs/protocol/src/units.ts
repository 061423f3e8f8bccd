const DURATION_UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const BYTE_UNITS: Readonly<Record<string, number>> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };

/**
 * `500ms`, `30s`, `5m`, `2h`, `7d` or a bare number of seconds (`12`, `1.5`) to
 * milliseconds (rounded). Throws a RangeError naming the text for anything else.
 */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  const ms = m ? Math.round(Number(m[1]) * DURATION_UNITS[m[2] ?? 's']) : NaN;
  if (!Number.isSafeInteger(ms)) throw new RangeError(`'${text}' is not a duration: use e.g. 500ms, 30s, 5m, 2h, 7d`);
  return ms;
}

/** `parseDuration`, or undefined for a missing text or one that is not a duration. */
export function tryParseDuration(text: string | undefined): number | undefined {
  try {
    return text === undefined ? undefined : parseDuration(text);
  } catch {
    return undefined;
  }
}

/** `123`, `64K`, `16M`, `1G` (powers of 1024; `KB`/`MiB` spellings and lower case accepted) to bytes. */
export function parseBytes(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMG]?)(?:i?B)?$/i.exec(text.trim());
  const bytes = m ? Math.floor(Number(m[1]) * BYTE_UNITS[m[2].toUpperCase()]) : NaN;
  if (!Number.isSafeInteger(bytes)) throw new RangeError(`'${text}' is not a size: use e.g. 123, 64K, 16M, 1G`);
  return bytes;
}
