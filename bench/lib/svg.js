// A small hand-written SVG bar chart: download MB/s against the number of seeders, with the ceiling as a line.

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * `bars`: [{ label, value, min?, max? }] (MB/s; min/max, when given, draw a range whisker over the bar, e.g. the
 * lowest and highest of several rounds whose median is `value`); `ceiling`: MB/s or undefined; returns the SVG text.
 */
function throughputChart({ title, bars, ceiling, ceilingLabel, unit = 'MB/s', xLabel = 'seeders (1 downloader)' }) {
  const W = 560;
  const H = 340;
  const left = 64;
  const right = 24;
  const top = 48;
  const bottom = 56;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const maxValue = Math.max(1, ceiling ?? 0, ...bars.map((b) => Math.max(b.value || 0, b.max || 0))) * 1.15;
  const step = niceStep(maxValue / 5);
  const yMax = Math.ceil(maxValue / step) * step;
  const y = (v) => top + plotH - (v / yMax) * plotH;
  const out = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ` +
      `font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`);
  for (let v = 0; v <= yMax + 1e-9; v += step) {
    const yy = y(v).toFixed(1);
    out.push(`<line x1="${left}" y1="${yy}" x2="${W - right}" y2="${yy}" stroke="#e3e3e3"/>`);
    out.push(`<text x="${left - 8}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" fill="#444">${fmt(v)}</text>`);
  }
  out.push(
    `<text x="16" y="${top + plotH / 2}" text-anchor="middle" fill="#444" ` +
      `transform="rotate(-90 16 ${top + plotH / 2})">${esc(unit)}</text>`,
  );
  const slot = plotW / Math.max(1, bars.length);
  const barW = Math.min(90, slot * 0.55);
  bars.forEach((b, i) => {
    const cx = left + slot * (i + 0.5);
    const v = b.value || 0;
    const yy = y(v);
    out.push(
      `<rect x="${(cx - barW / 2).toFixed(1)}" y="${yy.toFixed(1)}" width="${barW.toFixed(1)}" ` +
        `height="${(top + plotH - yy).toFixed(1)}" fill="#3b78c2"/>`,
    );
    // the value inside the top of the bar, clear of the ceiling line
    out.push(
      `<text x="${cx.toFixed(1)}" y="${(yy + 16).toFixed(1)}" text-anchor="middle" fill="#ffffff" ` +
        `font-weight="bold">${fmt(v)}</text>`,
    );
    out.push(
      `<text x="${cx.toFixed(1)}" y="${top + plotH + 18}" text-anchor="middle" fill="#222">${esc(b.label)}</text>`,
    );
    if (b.min !== undefined && b.max !== undefined) {
      const y0 = y(b.min).toFixed(1);
      const y1 = y(b.max).toFixed(1);
      const x0 = (cx + barW / 2 + 8).toFixed(1);
      out.push(
        `<g stroke="#1d3f6a" stroke-width="1.5"><line x1="${x0}" y1="${y0}" x2="${x0}" y2="${y1}"/>` +
          `<line x1="${(+x0 - 4).toFixed(1)}" y1="${y0}" x2="${(+x0 + 4).toFixed(1)}" y2="${y0}"/>` +
          `<line x1="${(+x0 - 4).toFixed(1)}" y1="${y1}" x2="${(+x0 + 4).toFixed(1)}" y2="${y1}"/></g>`,
      );
    }
  });
  out.push(
    `<line x1="${left}" y1="${top + plotH}" x2="${W - right}" y2="${top + plotH}" stroke="#444"/>` +
      `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotH}" stroke="#444"/>`,
  );
  out.push(`<text x="${left + plotW / 2}" y="${H - 14}" text-anchor="middle" fill="#444">${esc(xLabel)}</text>`);
  if (ceiling) {
    const yy = y(ceiling).toFixed(1);
    out.push(
      `<line x1="${left}" y1="${yy}" x2="${W - right}" y2="${yy}" stroke="#d0452b" stroke-width="2" stroke-dasharray="7 5"/>`,
    );
    // legend under the title
    out.push(
      `<line x1="${left + 8}" y1="38" x2="${left + 40}" y2="38" stroke="#d0452b" stroke-width="2" stroke-dasharray="7 5"/>` +
        `<text x="${left + 48}" y="42" fill="#d0452b">${esc(ceilingLabel ?? 'ceiling')}: ${fmt(ceiling)} ${esc(unit)}</text>`,
    );
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}

function niceStep(raw) {
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

const fmt = (v) => (v === 0 ? '0' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

module.exports = { throughputChart };
