/** Polls `check` until it holds; rejects with `what` after the timeout. Stands in for a sleep "until X happened". */
export async function waitUntil(check: () => boolean | Promise<boolean>, what = 'condition', timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
