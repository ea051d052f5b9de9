import * as assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";

import {
  expandVariables,
  readLlmProvider,
  readNotificationLevel,
  readServerLaunch,
  resolveServerLaunch,
} from "../../src/settings";
import * as vscode from "../mock/vscode";

describe("resolveServerLaunch", () => {
  it("starts `wattson serve` when nothing is configured", () => {
    assert.deepEqual(resolveServerLaunch(undefined, "", "/ws", "/home/u"), {
      launch: { command: "wattson", args: ["serve"], cwd: "/ws" },
    });
  });

  it("takes the configured command and its arguments", () => {
    assert.deepEqual(resolveServerLaunch(["/opt/bin/wattson", "serve", "--log", "debug"], "", undefined, "/h"), {
      launch: { command: "/opt/bin/wattson", args: ["serve", "--log", "debug"], cwd: undefined },
    });
  });

  it("prefers the Python interpreter when one is set", () => {
    assert.deepEqual(resolveServerLaunch(["wattson", "serve"], " ~/venv/bin/python ", "/ws", "/home/u"), {
      launch: { command: "/home/u/venv/bin/python", args: ["-m", "wattson", "serve"], cwd: "/ws" },
    });
  });

  it("expands ${workspaceFolder} in the command", () => {
    const setting = resolveServerLaunch(["${workspaceFolder}/.venv/bin/wattson", "serve"], "", "/ws", "/h");
    assert.deepEqual(setting, { launch: { command: "/ws/.venv/bin/wattson", args: ["serve"], cwd: "/ws" } });
  });

  for (const bad of [[], "wattson serve", [""], ["wattson", 3]]) {
    it(`explains what to fix for ${JSON.stringify(bad)}`, () => {
      const setting = resolveServerLaunch(bad, "", undefined, "/h");
      assert.ok("problem" in setting);
      assert.match(setting.problem, /wattson\.server\.command must be a list of strings/);
    });
  }
});

describe("expandVariables", () => {
  it("leaves ${workspaceFolder} alone without a folder, and expands ${userHome}", () => {
    assert.equal(expandVariables("${workspaceFolder}/x", undefined, "/h"), "${workspaceFolder}/x");
    assert.equal(expandVariables("${userHome}/py", undefined, "/h"), "/h/py");
    assert.equal(expandVariables("~", undefined, "/h"), "/h");
    assert.equal(expandVariables("a~b", undefined, "/h"), "a~b");
  });
});

describe("settings read from the editor", () => {
  beforeEach(() => vscode.reset());

  it("reads the launch from wattson.server.*", () => {
    vscode.configuration["wattson.server.command"] = ["python3", "-m", "wattson", "serve"];
    assert.deepEqual(readServerLaunch("/ws"), {
      launch: { command: "python3", args: ["-m", "wattson", "serve"], cwd: "/ws" },
    });
    vscode.configuration["wattson.server.pythonPath"] = "/usr/bin/python3.12";
    assert.deepEqual(readServerLaunch("/ws"), {
      launch: { command: "/usr/bin/python3.12", args: ["-m", "wattson", "serve"], cwd: "/ws" },
    });
  });

  it("falls back to safe values for unset or unknown settings", () => {
    assert.equal(readNotificationLevel(), "all");
    assert.equal(readLlmProvider(), "anthropic");
    vscode.configuration["wattson.notifications"] = "errors";
    vscode.configuration["wattson.llm.provider"] = "openai-compatible";
    assert.equal(readNotificationLevel(), "errors");
    assert.equal(readLlmProvider(), "openai-compatible");
    vscode.configuration["wattson.notifications"] = "loud";
    assert.equal(readNotificationLevel(), "all");
  });
});
