import { parsePrometheus, type Sample } from '@app/http-endpoint/testing/prometheus-text';

export { parsePrometheus, valueOf } from '@app/http-endpoint/testing/prometheus-text';
export type { Sample } from '@app/http-endpoint/testing/prometheus-text';

/** GETs `http://127.0.0.1:<port><path>`: status, content type and body. */
export async function httpGet(port: number, path: string): Promise<{ status: number; type: string; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(10_000) });
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
}

/** Scrapes `/metrics` on `port` and parses it. */
export async function scrape(port: number): Promise<Sample[]> {
  const { status, type, body } = await httpGet(port, '/metrics');
  if (status !== 200) throw new Error(`/metrics answered ${status}: ${body}`);
  if (!type.startsWith('text/plain')) throw new Error(`/metrics content type ${type}`);
  return parsePrometheus(body);
}
