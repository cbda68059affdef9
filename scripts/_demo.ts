/**
 * The README's demo itself: `forklift run -w 2` over examples/hello.ts on the
 * Deno running this script, with metrics on localhost. `scripts/demo.ts`
 * starts it with only forklift's own dependencies installed.
 *
 * @module
 */
import process from "node:process";
import { main } from "../src/cli/main.ts";

const root = new URL("..", import.meta.url).pathname;
const port = process.env.PORT ?? "8000";
const metrics = process.env.FORKLIFT_METRICS_BIND || "127.0.0.1:9464";

console.log(`forklift demo: 2 workers of examples/hello.ts sharing one port
  app:       http://127.0.0.1:${port}/   (try: curl http://127.0.0.1:${port}/)
  dashboard: http://${metrics}/   (open it in a browser)
  metrics:   http://${metrics}/metrics
  status:    http://${metrics}/status   (or: deno task cli status)
  stop:      Ctrl-C
`);
process.exitCode = await main([
  "run",
  "-c",
  `${root}examples/forklift.ini`,
  "--metrics-bind",
  metrics,
  "--",
  process.execPath,
  "run",
  // hello.ts imports nothing to lock; without this, Deno would rewrite the
  // checkout's deno.lock from a workspace it sees without package.json.
  "--no-lock",
  "--allow-net",
  "--allow-env=PORT",
  `${root}examples/hello.ts`,
]);
