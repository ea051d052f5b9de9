/**
 * Jobs run over a real JSON-RPC connection (vscode-languageserver-protocol over in-memory
 * streams); the test plays the server's side of docs/lsp.md.
 */
import * as assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { afterEach, beforeEach, describe, it } from "node:test";

import {
  createProtocolConnection,
  ExecuteCommandRequest,
  type ExecuteCommandParams,
  LSPErrorCodes,
  type ProtocolConnection,
  ResponseError,
  StreamMessageReader,
  StreamMessageWriter,
  WorkDoneProgress,
  WorkDoneProgressCancelNotification,
} from "vscode-languageserver-protocol/node";

import { jobTitle, ProgressTracker, runJob } from "../../src/jobs";
import * as vscode from "../mock/vscode";

interface Pair {
  client: ProtocolConnection;
  server: ProtocolConnection;
}

function connect(): Pair {
  const up = new PassThrough();
  const down = new PassThrough();
  const client = createProtocolConnection(new StreamMessageReader(down), new StreamMessageWriter(up));
  const server = createProtocolConnection(new StreamMessageReader(up), new StreamMessageWriter(down));
  return { client, server };
}

const TARGET = { uri: "file:///work/app/jacobi%202d.cu", version: 4 };

describe("runJob", () => {
  let pair: Pair;

  beforeEach(() => {
    vscode.reset();
    pair = connect();
  });

  afterEach(() => {
    pair.client.dispose();
    pair.server.dispose();
  });

  it("sends the command with its own workDoneToken and shows each stage in the notification", async () => {
    let received: ExecuteCommandParams | undefined;
    pair.server.onRequest(ExecuteCommandRequest.type, async (params) => {
      received = params;
      const token = params.workDoneToken!;
      await pair.server.sendProgress(WorkDoneProgress.type, token, { kind: "begin", title: "Optimize", percentage: 0, message: "Measuring the original" });
      await pair.server.sendProgress(WorkDoneProgress.type, token, { kind: "report", percentage: 40, message: "Generating candidates (2/3)" });
      await pair.server.sendProgress(WorkDoneProgress.type, token, { kind: "report", percentage: 90 });
      await pair.server.sendProgress(WorkDoneProgress.type, token, { kind: "end", message: "Done" });
      return { status: "proposed", message: "−12.3 % energy [−14.0, −10.6]", report_uri: "file:///data/r.md" };
    });
    pair.server.listen();
    pair.client.listen();

    const outcome = await runJob(pair.client, "wattson.optimize", [TARGET]);

    assert.deepEqual(outcome, {
      kind: "finished",
      result: { status: "proposed", message: "−12.3 % energy [−14.0, −10.6]", report_uri: "file:///data/r.md" },
    });
    assert.equal(received?.command, "wattson.optimize");
    assert.deepEqual(received?.arguments, [TARGET]);
    assert.match(String(received?.workDoneToken), /^wattson-[0-9a-f-]{36}$/);
    assert.equal(vscode.record.progress.length, 1);
    assert.equal(vscode.record.progress[0].title, "Wattson: optimizing jacobi 2d.cu for energy");
    assert.deepEqual(vscode.record.progress[0].reports, [
      { message: "Measuring the original" },
      { message: "Generating candidates (2/3)", increment: 40 },
      { increment: 50 },
      { message: "Done" },
    ]);
  });

  it("turns Cancel into $/cancelRequest and a progress cancel, and reports nothing", async () => {
    const progressCancels: unknown[] = [];
    let cancelledOnServer = false;
    pair.server.onNotification(WorkDoneProgressCancelNotification.type, (params) => progressCancels.push(params.token));
    pair.server.onRequest(ExecuteCommandRequest.type, async (params, token) => {
      await pair.server.sendProgress(WorkDoneProgress.type, params.workDoneToken!, { kind: "begin", title: "Profile" });
      setImmediate(() => vscode.progressControl.cancel());
      await new Promise<void>((resolve) => token.onCancellationRequested(() => resolve()));
      cancelledOnServer = true;
      return new ResponseError(LSPErrorCodes.RequestCancelled, "cancelled");
    });
    pair.server.listen();
    pair.client.listen();

    const outcome = await runJob(pair.client, "wattson.profile", [TARGET], 10_000);

    assert.deepEqual(outcome, { kind: "cancelled" });
    assert.equal(cancelledOnServer, true);
    assert.equal(progressCancels.length, 1);
    assert.match(String(progressCancels[0]), /^wattson-/);
  });

  it("closes the notification after a grace period when the server never answers a cancel", async () => {
    pair.server.onRequest(ExecuteCommandRequest.type, async () => {
      setImmediate(() => vscode.progressControl.cancel());
      return new Promise(() => undefined);
    });
    pair.server.listen();
    pair.client.listen();
    const started = Date.now();
    assert.deepEqual(await runJob(pair.client, "wattson.profile", [TARGET], 50), { kind: "cancelled" });
    assert.ok(Date.now() - started < 2000);
  });

  it("passes on the server's refusal as a failure with its message", async () => {
    pair.server.onRequest(ExecuteCommandRequest.type, () =>
      new ResponseError(-32803, "A job is already running for jacobi.cu: wait for it or cancel it."),
    );
    pair.server.listen();
    pair.client.listen();
    assert.deepEqual(await runJob(pair.client, "wattson.optimize", [TARGET]), {
      kind: "failed",
      message: "A job is already running for jacobi.cu: wait for it or cancel it.",
    });
  });

  it("treats a result it cannot read as a failure, and a cancelled status as cancelled", async () => {
    const replies: unknown[] = [{ state: "done" }, { status: "cancelled", message: "", report_uri: null }, { status: "done", message: "3.1 J" }];
    pair.server.onRequest(ExecuteCommandRequest.type, () => replies.shift());
    pair.server.listen();
    pair.client.listen();
    assert.deepEqual(await runJob(pair.client, "wattson.optimize", [TARGET]), {
      kind: "failed",
      message: "The server answered wattson.optimize with an unexpected result.",
    });
    assert.deepEqual(await runJob(pair.client, "wattson.optimize", [TARGET]), { kind: "cancelled" });
    assert.deepEqual(await runJob(pair.client, "wattson.profile", [TARGET]), {
      kind: "finished",
      result: { status: "done", message: "3.1 J", report_uri: null },
    });
  });
});

describe("ProgressTracker", () => {
  it("turns absolute percentages into increments that never go backwards", () => {
    const tracker = new ProgressTracker();
    assert.deepEqual(tracker.update({ kind: "begin", title: "t", percentage: 10 }), { increment: 10 });
    assert.deepEqual(tracker.update({ kind: "report", percentage: 5, message: "stage 2" }), { message: "stage 2" });
    assert.deepEqual(tracker.update({ kind: "report", percentage: 150 }), { increment: 90 });
    assert.deepEqual(tracker.update({ kind: "end" }), {});
  });
});

describe("jobTitle", () => {
  it("names the file and the kernel", () => {
    assert.equal(jobTitle("wattson.profile", TARGET), "Wattson: profiling jacobi 2d.cu");
    assert.equal(
      jobTitle("wattson.optimize", { ...TARGET, kernel: "stencil" }),
      "Wattson: optimizing kernel stencil in jacobi 2d.cu",
    );
    assert.equal(jobTitle("wattson.profile", undefined), "Wattson: profiling");
  });
});
