/**
 * The client's one unit convention: binary prefixes, labelled as such (1 KiB = 1024 B, 1 MiB = 1024 KiB). Sizes,
 * rates (`MiB/s`) and the limits `set` and the flags read (`5M` = 5 MiB/s) all use it; the tracker's `size=<bytes>`
 * stays in bytes.
 */
const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 1536 -> "1.5 KiB" (powers of 1024). */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

export const formatRate = (bytesPerSecond: number): string => `${formatBytes(Math.round(bytesPerSecond))}/s`;

/** A time span for people: `0.4 s`, `12 s`, `3m 10s`, `2h 5m` (whole seconds rounded up from 1 s on). */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${(Math.max(ms, 0) / 1000).toFixed(1)} s`;
  const s = Math.ceil(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

/**
 * Time left to move `remainingBytes` at `bytesPerSecond`: undefined when it cannot be told (no speed yet, or
 * more than a hundred days).
 */
export function etaMs(remainingBytes: number, bytesPerSecond: number): number | undefined {
  if (remainingBytes <= 0) return 0;
  if (!(bytesPerSecond > 0)) return undefined;
  const ms = (1000 * remainingBytes) / bytesPerSecond;
  return ms <= 100 * 86_400_000 ? ms : undefined;
}
