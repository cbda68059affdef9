/**
 * Finds the pinned Bun for the scripts: `FORKLIFT_TEST_BUN` when set, else
 * through npx (which fetches it from the npm registry once and caches it).
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import process from "node:process";

/** The Bun version forklift is built and tested with. */
export const BUN_VERSION = "1.4.5";

/** Absolute path of the pinned bun executable; exits the script if there is none. */
export function findBun(): string {
  const fromEnv = process.env.FORKLIFT_TEST_BUN;
  if (fromEnv) return fromEnv;
  const r = spawnSync("npx", ["-y", `bun@${BUN_VERSION}`, "-e", "console.log(process.execPath)"], {
    encoding: "utf8",
    timeout: 180_000,
  });
  const path = r.stdout?.trim().split("\n").pop() ?? "";
  if (r.status !== 0 || path === "") {
    console.error(`Cannot get bun ${BUN_VERSION} through npx: ${r.stderr?.trim() || r.error}`);
    process.exit(1);
  }
  return path;
}
