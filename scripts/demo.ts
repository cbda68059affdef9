/**
 * The README's demo: `forklift run -w 2` over examples/hello.ts on the Deno
 * running this task, with metrics on localhost. Stop it with Ctrl-C.
 *
 * Usage: deno task demo
 *
 * @module
 */
import process from "node:process";
import { main } from "../src/cli/main.ts";

const root = new URL("..", import.meta.url).pathname;
const port = process.env.PORT ?? "8000";
const metrics = "127.0.0.1:9464";

console.log(`forklift demo: 2 workers of examples/hello.ts sharing one port
  app:     http://127.0.0.1:${port}/   (try: curl http://127.0.0.1:${port}/)
  metrics: http://${metrics}/metrics
  status:  http://${metrics}/status   (or: deno task cli status)
  stop:    Ctrl-C
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
  "--allow-net",
  "--allow-env=PORT",
  `${root}examples/hello.ts`,
]);
