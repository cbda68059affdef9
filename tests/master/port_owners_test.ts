import { test } from "node:test";
import assert from "node:assert/strict";
import { type Listener, parseListeners, sharesTraffic } from "../../src/master/port_owners.ts";

test("parseListeners() keeps the listening sockets of one port, IPv4 and IPv6, with their addresses", () => {
  const lines = [
    "  0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1 0",
    "  1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1 0",
    "  2: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 333 1 0",
    "  3: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 444 1 0",
    "  4: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   33        0 555 1 0",
    "  5: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   33        0 666 1 0",
    "  6: 0000000000000000FFFF00000200007F:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   33        0 777 1 0",
    "  7: B80D0120000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   33        0 888 1 0",
    "  8: XYZ:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 999 1 0",
    "garbage",
  ];
  assert.deepEqual(parseListeners(lines, 8080), [
    { inode: "111", uid: 1000, family: 4, address: "127.0.0.1" },
    { inode: "222", uid: 0, family: 4, address: "0.0.0.0" },
    { inode: "555", uid: 33, family: 6, address: "::" },
    { inode: "666", uid: 33, family: 6, address: "::1" },
    { inode: "777", uid: 33, family: 4, address: "127.0.0.2" },
    { inode: "888", uid: 33, family: 6, address: "2001:db8::1" },
  ]);
});

test("sharesTraffic() follows the kernel: one user's sockets, the same address or a more specific one", () => {
  const l = (address: string, uid = 0): Listener => ({
    inode: "1",
    uid,
    family: address.includes(":") ? 6 : 4,
    address,
  });
  // [other, ours, whether other takes connections meant for ours]
  const cases: Array<[Listener, Listener, boolean]> = [
    [l("127.0.0.1"), l("127.0.0.1"), true], // one SO_REUSEPORT group
    [l("0.0.0.0"), l("0.0.0.0"), true],
    [l("::"), l("::"), true],
    [l("127.0.0.2"), l("0.0.0.0"), true], // more specific: the kernel prefers it
    [l("127.0.0.2"), l("::"), true], // [::] is dual-stack unless told otherwise
    [l("0.0.0.0"), l("::"), true], // IPv4's own wildcard wins IPv4 connections
    [l("::1"), l("::"), true],
    [l("127.0.0.2"), l("127.0.0.1"), false],
    [l("::1"), l("127.0.0.1"), false],
    [l("::1"), l("0.0.0.0"), false],
    [l("::"), l("0.0.0.0"), false], // IPv4 connections go to the IPv4 socket
    [l("0.0.0.0"), l("127.0.0.1"), false], // the specific address keeps its connections
    [l("::"), l("127.0.0.1"), false],
    [l("127.0.0.1", 65534), l("127.0.0.1"), false], // another user's: never one group
    [l("127.0.0.2", 65534), l("0.0.0.0"), false],
  ];
  for (const [other, ours, expected] of cases) {
    assert.equal(sharesTraffic(other, ours), expected, `${other.address} vs ${ours.address}`);
  }
});
