// Medians and summaries of rounds, and how the bench prints numbers.
const { MiB } = require('./runtime');

const mb = (bytes) => (bytes === undefined ? undefined : +(bytes / MiB).toFixed(1));
const median = (values) => {
  const v = [...values].sort((a, b) => a - b);
  return v.length === 0
    ? undefined
    : v.length % 2
      ? v[(v.length - 1) / 2]
      : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};
/** Median MB/s (and seconds), min, max and every sample of rounds of one measurement ({ seconds, MBps }). */
const summarize = (samples, extra = {}) => ({
  seconds: median(samples.map((x) => x.seconds)),
  MBps: median(samples.map((x) => x.MBps)),
  minMBps: Math.min(...samples.map((x) => x.MBps)),
  maxMBps: Math.max(...samples.map((x) => x.MBps)),
  roundsMBps: samples.map((x) => +x.MBps.toFixed(0)),
  ...extra,
});

const fmt = (v) =>
  v === undefined || Number.isNaN(v) ? 'n/a' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
const pctOf = (r) => `${(100 * r).toFixed(0)}%`;
const check = (ok) => (ok ? 'met' : '**missed**');

/** The min–max MB/s cell of a row summarised over `rounds` rounds (empty for one round). */
const minMax = (r, rounds) => (rounds > 1 ? `${fmt(r.minMBps)}–${fmt(r.maxMBps)}` : '');

module.exports = { mb, median, summarize, fmt, pctOf, check, minMax };
