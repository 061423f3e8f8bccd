/** What `work` throws, or undefined when it returns: for checking a synchronous refusal's class and code together. */
export function thrownBy(work: () => unknown): unknown {
  try {
    work();
  } catch (err) {
    return err;
  }
  return undefined;
}
