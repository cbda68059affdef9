import { test } from "node:test";
import assert from "node:assert/strict";
import { channelPath } from "../../src/master/channel_path.ts";

test("channelPath() names the socket after the master's pid", () => {
  assert.equal(
    channelPath({ XDG_RUNTIME_DIR: "/run/user/1000/" }, 7),
    "/run/user/1000/forklift-7.sock",
  );
  assert.match(channelPath({}, 7), /\/forklift-7\.sock$/);
});
