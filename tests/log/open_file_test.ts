import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { ROOT, runCli } from "../_helpers/cli.ts";
import { RUNTIMES, serverArgv } from "../_helpers/master.ts";
import { openNoFollow } from "../../src/log/open_file.ts";
import { setupLogging } from "../../src/log/logging.ts";
import { writePidFile } from "../../src/master/pid_file.ts";

/** A temp dir with `victim` (a file someone else owns, say) and `link` pointing at it. */
function withLink(fn: (dir: string) => Promise<void> | void) {
  return async () => {
    const dir = mkdtempSync(`${tmpdir()}/forklift-link-`);
    try {
      writeFileSync(`${dir}/victim`, "precious\n");
      symlinkSync(`${dir}/victim`, `${dir}/link`);
      await fn(dir);
      assert.equal(readFileSync(`${dir}/victim`, "utf8"), "precious\n", "the link was followed");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

const LINK_ERROR = { name: "Error", message: "it is a symbolic link, which is not followed" };

describe("files the master writes by name", () => {
  test(
    "openNoFollow() refuses a symbolic link, for appending and for truncating",
    withLink((dir) => {
      assert.throws(() => openNoFollow(`${dir}/link`, "append"), LINK_ERROR);
      assert.throws(() => openNoFollow(`${dir}/link`, "truncate"), LINK_ERROR);
    }),
  );

  test(
    "writePidFile() refuses a symbolic link and writes a plain file",
    withLink((dir) => {
      assert.throws(() => writePidFile(`${dir}/link`, 4242), LINK_ERROR);
      writeFileSync(`${dir}/old.pid`, "a much longer previous content\n");
      const file = writePidFile(`${dir}/old.pid`, 4242);
      assert.equal(readFileSync(`${dir}/old.pid`, "utf8"), "4242\n");
      file.remove();
    }),
  );

  test(
    "setupLogging() refuses a log_file that is a symbolic link",
    withLink((dir) => {
      assert.throws(
        () => setupLogging({ level: "info", format: "text", file: `${dir}/link` }),
        LINK_ERROR,
      );
    }),
  );

  const runtime = RUNTIMES.bun ? "bun" : "deno";
  test(
    "forklift run says in one line that a pid_file or log_file symbolic link is refused",
    { skip: !RUNTIMES.bun && !RUNTIMES.deno },
    withLink(async (dir) => {
      const app = [...serverArgv(runtime, `${ROOT}tests/fixtures/master/exit_code.ts`), "0"];
      const common = ["--once", "--metrics-bind", "off"];
      const log = await runCli(["run", "--log-file", `${dir}/link`, ...common, "--", ...app]);
      assert.equal(log.code, 2, log.stderr);
      assert.equal(
        log.stderr,
        `forklift: Cannot open log file ${dir}/link: it is a symbolic link, which is not followed\n`,
      );
      const pid = await runCli(["run", "--pid-file", `${dir}/link`, ...common, "--", ...app]);
      assert.notEqual(pid.code, 0, pid.stderr);
      const lines = pid.stderr.trim().split("\n");
      assert.equal(lines.length, 1, pid.stderr);
      assert.match(
        lines[0],
        /Cannot write pid file .*\/link: it is a symbolic link, which is not followed$/,
      );
    }),
  );
});
