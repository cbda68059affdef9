// A hello-world server for the demo. It knows nothing of forklift: run under
// `forklift run`, it is started as several workers sharing the port, and every
// request is timed by the reporter the launcher preloads.
import process from "node:process";

const port = Number(process.env.PORT ?? 8000);

const handler = (req: Request): Response => {
  const url = new URL(req.url);
  if (url.pathname === "/pid") return new Response(`${process.pid}\n`);
  return new Response(`Hello from worker pid ${process.pid}\n`);
};

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
if (g.Bun) g.Bun.serve({ port, fetch: handler });
else g.Deno.serve({ port, onListen: () => {} }, handler);
