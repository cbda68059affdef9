/**
 * The C library through the runtime's FFI, for the few calls neither runtime
 * offers (datagram sockets for systemd, reaping orphans as PID 1): one
 * description of each function, turned into Bun's or Deno's FFI terms, and
 * one way of calling it (typed arrays for pointers, numbers back).
 *
 * @module
 */

// deno-lint-ignore-file no-explicit-any

/** A C type as the calls here need them. */
export type CType = "i32" | "u32" | "usize" | "isize" | "pointer";

/** One C function: its parameters and its result. */
export interface CFunction {
  params: CType[];
  result: "i32" | "isize";
}

/** An argument: a number for integers, a typed array for a pointer to its memory. */
export type CArgument = number | ArrayBufferView;

/** The C library, opened: each function, called with numbers and typed arrays. */
export interface Libc<T extends Record<string, CFunction>> {
  readonly call: { readonly [K in keyof T]: (...args: CArgument[]) => number };
  /** Unloads the library. */
  close(): void;
}

const NAMES = ["libc.so.6", "libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1", "libc.so"];

/**
 * Opens the C library with `functions`; throws where there is no C library
 * or no FFI (Deno without `--allow-ffi`).
 *
 * @example Read the monotonic clock
 * ```ts ignore
 * import { openLibc } from "./libc.ts";
 * const libc = await openLibc({ clock_gettime: { params: ["i32", "pointer"], result: "i32" } });
 * const ts = new BigInt64Array(2);
 * libc.call.clock_gettime(1, ts);
 * libc.close();
 * ```
 */
export async function openLibc<T extends Record<string, CFunction>>(
  functions: T,
): Promise<Libc<T>> {
  const g = globalThis as any;
  return g.Bun ? await bunLibc(functions) : denoLibc(g.Deno, functions);
}

function firstLibrary<L>(open: (name: string) => L): L {
  let last: unknown;
  for (const name of NAMES) {
    try {
      return open(name);
    } catch (e) {
      last = e;
    }
  }
  throw last;
}

/** Each function's symbol description, in the form a runtime's `dlopen` takes. */
function describe(
  functions: Record<string, CFunction>,
  as: (f: CFunction) => unknown,
): Record<string, unknown> {
  return Object.fromEntries(Object.entries(functions).map(([fn, f]) => [fn, as(f)]));
}

async function bunLibc<T extends Record<string, CFunction>>(functions: T): Promise<Libc<T>> {
  const { dlopen, FFIType, ptr } = await import("bun:ffi" as string);
  const type = (t: CType) =>
    ({ i32: FFIType.i32, u32: FFIType.u32, usize: FFIType.u64, isize: FFIType.i64 } as any)[t] ??
      FFIType.ptr;
  const symbols = describe(
    functions,
    (f) => ({ args: f.params.map(type), returns: type(f.result) }),
  );
  const lib = firstLibrary((name) => dlopen(name, symbols));
  const call: Record<string, (...args: CArgument[]) => number> = {};
  for (const fn of Object.keys(functions)) {
    const symbol = lib.symbols[fn];
    call[fn] = (...args) => Number(symbol(...args.map((a) => typeof a === "number" ? a : ptr(a))));
  }
  return { call: call as Libc<T>["call"], close: () => lib.close() };
}

function denoLibc<T extends Record<string, CFunction>>(deno: any, functions: T): Libc<T> {
  const type = (t: CType) => t === "pointer" ? "buffer" : t;
  const symbols = describe(
    functions,
    (f) => ({ parameters: f.params.map(type), result: type(f.result) }),
  );
  const lib = firstLibrary((name) => deno.dlopen(name, symbols));
  const call: Record<string, (...args: CArgument[]) => number> = {};
  for (const [fn, f] of Object.entries(functions)) {
    const symbol = lib.symbols[fn];
    call[fn] = (...args) =>
      Number(
        symbol(...args.map((a, i) =>
          typeof a !== "number"
            ? new Uint8Array(a.buffer, a.byteOffset, a.byteLength)
            : f.params[i] === "usize" || f.params[i] === "isize"
            ? BigInt(a)
            : a
        )),
      );
  }
  return { call: call as Libc<T>["call"], close: () => lib.close() };
}
