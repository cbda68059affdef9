import { test } from "node:test";
import assert from "node:assert/strict";
import { parseListeners } from "../../src/master/port_owners.ts";

test("parseListeners() keeps the listening sockets of one port, IPv4 and IPv6", () => {
  const lines = [
    "  0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1 0",
    "  1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1 0",
    "  2: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 333 1 0",
    "  3: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 444 1 0",
    "  4: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   33        0 555 1 0",
    "garbage",
  ];
  assert.deepEqual(parseListeners(lines, 8080), [
    { inode: "111", uid: 1000 },
    { inode: "222", uid: 0 },
    { inode: "555", uid: 33 },
  ]);
});
