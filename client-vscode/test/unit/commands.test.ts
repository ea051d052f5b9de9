import * as assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { beforeEach, describe, it } from "node:test";

import {
  createProtocolConnection,
  ExecuteCommandRequest,
  type ExecuteCommandParams,
  StreamMessageReader,
  StreamMessageWriter,
} from "vscode-languageserver-protocol/node";

import { chooseKernel, COMMANDS, registerCommands, type ServerControl, setApiKey } from "../../src/commands";
import type { JobChannel } from "../../src/jobs";
import { ApiKeyStore } from "../../src/secrets";
import * as vscode from "../mock/vscode";
import { fakeEditor, MemorySecrets } from "./helpers";

const KERNELS = `__global__ void first(int* a) { a[0] = 1; }
__global__ void second(int* a) { a[1] = 2; }
`;

class StoppedServer implements ServerControl {
  restarts = 0;
  channel(): Promise<JobChannel | undefined> {
    return Promise.resolve(undefined);
  }
  restart(): Promise<void> {
    this.restarts++;
    return Promise.resolve();
  }
}

/** A server on the other end of a real JSON-RPC connection that records the commands it gets. */
function recordingServer(): { control: ServerControl; received: ExecuteCommandParams[] } {
  const up = new PassThrough();
  const down = new PassThrough();
  const client = createProtocolConnection(new StreamMessageReader(down), new StreamMessageWriter(up));
  const server = createProtocolConnection(new StreamMessageReader(up), new StreamMessageWriter(down));
  const received: ExecuteCommandParams[] = [];
  server.onRequest(ExecuteCommandRequest.type, (params) => {
    received.push(params);
    return { status: "no-improvement", message: "no detectable difference", report_uri: null };
  });
  server.listen();
  client.listen();
  return { control: { channel: () => Promise.resolve(client), restart: () => Promise.resolve() }, received };
}

describe("palette commands", () => {
  beforeEach(() => vscode.reset());

  it("optimizes the active file at its current version", async () => {
    const { control, received } = recordingServer();
    registerCommands(control, new ApiKeyStore(new MemorySecrets() as never));
    vscode.setActiveEditor(fakeEditor(KERNELS, "/work/app/two.cu"));
    await vscode.commands.executeCommand(COMMANDS.optimizeFile);
    assert.equal(received.length, 1);
    assert.equal(received[0].command, "wattson.optimize");
    assert.deepEqual(received[0].arguments, [{ uri: "file:///work/app/two.cu", version: 7 }]);
    assert.deepEqual(vscode.record.progress.map((p) => p.title), ["Wattson: optimizing two.cu for energy"]);
  });

  it("optimizes the kernel under the cursor", async () => {
    const { control, received } = recordingServer();
    registerCommands(control, new ApiKeyStore(new MemorySecrets() as never));
    vscode.setActiveEditor(fakeEditor(KERNELS, "/work/app/two.cu", KERNELS.indexOf("a[1] = 2")));
    await vscode.commands.executeCommand(COMMANDS.optimizeKernel);
    assert.deepEqual(received[0].arguments, [{ uri: "file:///work/app/two.cu", version: 7, kernel: "second" }]);
    assert.deepEqual(vscode.record.quickPicks, []);
  });

  it("profiles, and asks for a CUDA file when another kind is active", async () => {
    const { control, received } = recordingServer();
    registerCommands(control, new ApiKeyStore(new MemorySecrets() as never));
    vscode.setActiveEditor(fakeEditor("x", "/work/notes.txt", 0, "plaintext"));
    await vscode.commands.executeCommand(COMMANDS.profileFile);
    assert.equal(received.length, 0);
    assert.equal(vscode.record.messages[0].message, "Wattson: open a .cu, .cuh or .hip file first.");
    vscode.setActiveEditor(fakeEditor(KERNELS, "/work/app/k.hip", 0, "hip"));
    await vscode.commands.executeCommand(COMMANDS.profileFile);
    assert.equal(received[0].command, "wattson.profile");
  });

  it("offers to restart a server that is not running", async () => {
    const server = new StoppedServer();
    registerCommands(server, new ApiKeyStore(new MemorySecrets() as never));
    vscode.setActiveEditor(fakeEditor(KERNELS, "/work/app/two.cu"));
    vscode.answers.messages.push("Restart Server");
    await vscode.commands.executeCommand(COMMANDS.optimizeFile);
    assert.deepEqual(vscode.record.messages[0], {
      kind: "error",
      message: "Wattson's server is not running.",
      buttons: ["Restart Server", "Show Output"],
    });
    assert.equal(server.restarts, 1);
    assert.deepEqual(vscode.record.progress, []);
  });
});

describe("chooseKernel", () => {
  beforeEach(() => vscode.reset());

  it("asks which kernel when the cursor is outside all of them", async () => {
    vscode.answers.quickPicks.push("second");
    const editor = fakeEditor(KERNELS + "\nint main() {}\n", "/w/a.cu", KERNELS.length + 3);
    assert.equal(await chooseKernel(editor as never), "second");
    assert.deepEqual(vscode.record.quickPicks[0].items.map((i: { label: string }) => i.label), ["first", "second"]);
  });

  it("takes the only kernel, and says when there is none", async () => {
    assert.equal(await chooseKernel(fakeEditor("__global__ void k() {}\nint x;", "/w/a.cu", 30) as never), "k");
    assert.equal(await chooseKernel(fakeEditor("int main() {}", "/w/a.cu") as never), undefined);
    assert.equal(vscode.record.messages[0].message, "Wattson: this file defines no __global__ kernel.");
  });
});

describe("setApiKey", () => {
  beforeEach(() => vscode.reset());

  it("stores the configured provider's key as a secret and restarts the server", async () => {
    const secrets = new MemorySecrets();
    const server = new StoppedServer();
    vscode.configuration["wattson.llm.provider"] = "openai-compatible";
    vscode.answers.inputBoxes.push("  sk-test-123  ");
    await setApiKey(new ApiKeyStore(secrets as never), server);
    assert.equal(vscode.record.inputBoxes[0].password, true);
    assert.deepEqual([...secrets.values], [["wattson.apiKey.openai-compatible", "sk-test-123"]]);
    assert.equal(server.restarts, 1);
    const everythingShown = JSON.stringify([vscode.record.messages, vscode.record.log, vscode.configuration]);
    assert.ok(!everythingShown.includes("sk-test-123"));
  });

  it("removes the key on an empty answer, and does nothing when dismissed", async () => {
    const secrets = new MemorySecrets();
    secrets.values.set("wattson.apiKey.anthropic", "old");
    const server = new StoppedServer();
    vscode.answers.inputBoxes.push(undefined, "");
    await setApiKey(new ApiKeyStore(secrets as never), server);
    assert.equal(server.restarts, 0);
    assert.equal(secrets.values.size, 1);
    await setApiKey(new ApiKeyStore(secrets as never), server);
    assert.equal(secrets.values.size, 0);
    assert.equal(server.restarts, 1);
  });

  it("explains that the command provider needs no key", async () => {
    vscode.configuration["wattson.llm.provider"] = "command";
    await setApiKey(new ApiKeyStore(new MemorySecrets() as never), new StoppedServer());
    assert.deepEqual(vscode.record.inputBoxes, []);
    assert.match(vscode.record.messages[0].message, /takes no API key/);
  });
});
