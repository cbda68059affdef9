import { test } from "node:test";
import assert from "node:assert/strict";
import {
  bracketHost,
  dialHost,
  formatHostPort,
  localHttpUrl,
  parseHostPort,
} from "../../src/protocol/host_port.ts";

test("formatHostPort() brackets IPv6 hosts once and leaves the others as they are", () => {
  assert.equal(formatHostPort("127.0.0.1", 9464), "127.0.0.1:9464");
  assert.equal(formatHostPort("::1", 9464), "[::1]:9464");
  assert.equal(formatHostPort("[::1]", 9464), "[::1]:9464");
  assert.equal(formatHostPort("fe80::1", 0), "[fe80::1]:0");
  assert.equal(formatHostPort("localhost", 80), "localhost:80");
  assert.equal(bracketHost("::"), "[::]");
});

test("parseHostPort() reads what formatHostPort() writes, and nothing else", () => {
  for (const [host, port] of [["127.0.0.1", 9464], ["::1", 80], ["example.com", 65535]] as const) {
    assert.deepEqual(parseHostPort(formatHostPort(host, port)), { host, port });
  }
  for (
    const bad of ["nowhere", "::1:80", "[::1]", "host:70000", ":80", "[]:80", "a:b:80", "h:-1"]
  ) {
    assert.equal(parseHostPort(bad), undefined, bad);
  }
});

test("localHttpUrl() dials loopback for a wildcard bind", () => {
  assert.equal(localHttpUrl("0.0.0.0", 9464, "/status"), "http://127.0.0.1:9464/status");
  assert.equal(localHttpUrl("::", 9464, "/status"), "http://[::1]:9464/status");
  assert.equal(localHttpUrl("10.1.2.3", 9464, "/metrics"), "http://10.1.2.3:9464/metrics");
  assert.equal(localHttpUrl("::1", 1, "/"), "http://[::1]:1/");
  assert.equal(dialHost(""), "127.0.0.1");
});
