import * as assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";

import { ApiKeyStore } from "../../src/secrets";
import { startFailureMessage, WattsonServer } from "../../src/server";
import * as vscode from "../mock/vscode";
import { MemorySecrets } from "./helpers";

function newServer(): WattsonServer {
  return new WattsonServer(new ApiKeyStore(new MemorySecrets() as never), {
    runJob: () => Promise.resolve(),
    onStarted: () => [],
  });
}

describe("WattsonServer start failures", () => {
  beforeEach(() => vscode.reset());

  it("says the server did not start, with the fix, when the program is missing", async () => {
    vscode.configuration["wattson.server.command"] = ["wattson-not-installed-here", "serve"];
    vscode.answers.messages.push("Show Output");
    const server = newServer();
    await server.start();
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(vscode.record.messages, [
      {
        kind: "error",
        message:
          "Wattson's server did not start (`wattson-not-installed-here` was not found): install it with " +
          "`pip install wattson` or set wattson.server.command.",
        buttons: ["Show Output", "Open Settings"],
      },
    ]);
    assert.equal(vscode.record.outputShown, 1);
    assert.ok(vscode.record.log.some((line) => line.includes("Starting the server: wattson-not-installed-here serve")));
    assert.equal(await server.channel(), undefined);
  });

  it("points at the setting when the command is malformed", async () => {
    vscode.configuration["wattson.server.command"] = "wattson serve";
    vscode.answers.messages.push("Open Settings");
    await newServer().start();
    await new Promise((resolve) => setImmediate(resolve));
    assert.match(vscode.record.messages[0].message, /^Wattson's server did not start: The setting wattson.server.command/);
    assert.deepEqual(vscode.record.commands, [{ id: "workbench.action.openSettings", args: ["wattson.server"] }]);
  });

  it("words the message as the issue asks", () => {
    assert.equal(
      startFailureMessage("`wattson` was not found"),
      "Wattson's server did not start (`wattson` was not found): install it with `pip install wattson` or set wattson.server.command.",
    );
  });
});
