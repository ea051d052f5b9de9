import * as assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";

import { CancellationToken } from "vscode-languageserver-protocol";

import { showDocumentMiddleware } from "../../src/reports";
import { showJobOutcome } from "../../src/results";
import * as vscode from "../mock/vscode";

const REPORT = "file:///home/u/.local/share/wattson/reports/jacobi-2025.md";

describe("showJobOutcome", () => {
  beforeEach(() => vscode.reset());

  it("says when the request itself failed, with the output a click away", async () => {
    vscode.answers.messages.push("Show Output");
    await showJobOutcome({ kind: "failed", message: "Wattson's server is not running." }, "errors");
    assert.deepEqual(vscode.record.messages, [
      { kind: "error", message: "Wattson: Wattson's server is not running.", buttons: ["Show Output"] },
    ]);
    assert.equal(vscode.record.outputShown, 1);
    assert.ok(vscode.record.log.some((line) => line.includes("The job failed: Wattson's server is not running.")));
  });

  it("leaves finished jobs to the server's own messages, and stays quiet when told to", async () => {
    for (const status of ["applied", "proposed", "no-improvement", "failed", "stale", "done"]) {
      await showJobOutcome({ kind: "finished", result: { status, message: "x", report_uri: REPORT } }, "all");
    }
    await showJobOutcome({ kind: "cancelled" }, "all");
    await showJobOutcome({ kind: "failed", message: "broken pipe" }, "none");
    assert.deepEqual(vscode.record.messages, []);
    assert.ok(vscode.record.log.some((line) => line.includes("broken pipe")));
  });
});

describe("showDocumentMiddleware", () => {
  beforeEach(() => vscode.reset());

  it("opens Markdown reports in the preview beside the source, instead of as text", async () => {
    let nextCalls = 0;
    const next = () => {
      nextCalls++;
      return { success: true };
    };
    assert.deepEqual(await showDocumentMiddleware({ uri: REPORT, takeFocus: false }, next), { success: true });
    assert.deepEqual(await showDocumentMiddleware({ uri: REPORT, takeFocus: true }, next), { success: true });
    assert.equal(nextCalls, 0);
    assert.deepEqual(
      vscode.record.commands.map((c) => [c.id, String(c.args[0])]),
      [
        ["markdown.showPreviewToSide", REPORT],
        ["markdown.showPreview", REPORT],
      ],
    );
  });

  it("leaves other documents, and external links, to the language client", async () => {
    const seen: string[] = [];
    const next = (params: { uri: string }, token: CancellationToken) => {
      assert.equal(token, CancellationToken.None);
      seen.push(params.uri);
      return { success: true };
    };
    await showDocumentMiddleware({ uri: "file:///work/app/jacobi.cu" }, next);
    await showDocumentMiddleware({ uri: "https://example.org/r.md", external: true }, next);
    assert.deepEqual(seen, ["file:///work/app/jacobi.cu", "https://example.org/r.md"]);
    assert.deepEqual(vscode.record.commands, []);
  });
});
