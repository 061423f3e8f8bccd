/**
 * Memory a chunk can be written to disk from with `O_DIRECT`, which wants the
 * buffer's address, the file offset and the length all on block boundaries.
 * Node gives no way to ask where a buffer lies, so page-aligned memory comes
 * from a `WebAssembly.Memory`: its backing store is mapped on its own, and so
 * starts on a page boundary. Where WebAssembly is unavailable (`--jitless`)
 * or the allocation fails, there is none and writes go through the page cache.
 */

/** Alignment asked of address, offset and length: 4 KiB covers the block size of every common disk. */
export const DIRECT_IO_ALIGNMENT = 4096;

const WASM_PAGE = 64 * 1024;
const MAX_WASM_PAGES = 65536;

interface WasmMemoryConstructor {
  new (descriptor: { initial: number }): { readonly buffer: ArrayBuffer };
}
const wasm = (globalThis as { WebAssembly?: { Memory: WasmMemoryConstructor } }).WebAssembly;

/** Regions from `allocAligned`: their byte 0 lies on a page boundary. */
const aligned = new WeakSet<ArrayBuffer>();

/** `bytes` of zeroed, page-aligned memory (rounded up to 64 KiB), or undefined where none can be had. */
export function allocAligned(bytes: number): ArrayBuffer | undefined {
  const pages = Math.max(1, Math.ceil(bytes / WASM_PAGE));
  if (!wasm || pages > MAX_WASM_PAGES) return undefined;
  try {
    const region = new wasm.Memory({ initial: pages }).buffer;
    aligned.add(region);
    return region;
  } catch {
    return undefined;
  }
}

/** True when `data` may be written with `O_DIRECT` at file offset `offset`. */
export function isDirectWritable(data: Buffer, offset: number): boolean {
  return (
    data.length > 0 &&
    data.length % DIRECT_IO_ALIGNMENT === 0 &&
    offset % DIRECT_IO_ALIGNMENT === 0 &&
    data.byteOffset % DIRECT_IO_ALIGNMENT === 0 &&
    aligned.has(data.buffer as ArrayBuffer)
  );
}
