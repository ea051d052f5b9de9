import * as assert from "node:assert/strict";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";

import { describeExit, describeLaunch, LaunchError, spawnServer, StderrTail } from "../../src/launch";
import { serverEnvironment } from "../../src/secrets";

function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve) => {
    let text = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => (text += chunk));
    stream.on("end", () => resolve(text));
  });
}

describe("spawnServer", () => {
  it("says the program was not found", async () => {
    await assert.rejects(
      spawnServer({ command: "wattson-does-not-exist-here", args: ["serve"], cwd: undefined }, process.env),
      (error: unknown) => error instanceof LaunchError && error.message === "`wattson-does-not-exist-here` was not found",
    );
  });

  it("says when the working folder is missing rather than blaming the program", async () => {
    await assert.rejects(
      spawnServer({ command: process.execPath, args: ["-e", "0"], cwd: "/no/such/folder" }, process.env),
      /working folder \/no\/such\/folder does not exist/,
    );
  });

  it("says when the program is not executable", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "wattson-launch-"));
    const script = path.join(dir, "wattson");
    writeFileSync(script, "#!/bin/sh\nexit 0\n");
    chmodSync(script, 0o644);
    await assert.rejects(spawnServer({ command: script, args: [], cwd: dir }, process.env), /is not executable/);
  });

  it("gives the server the API keys through its environment", async () => {
    const env = serverEnvironment({ ...process.env, ANTHROPIC_API_KEY: "inherited" }, { ANTHROPIC_API_KEY: "sk-stored" });
    const server = await spawnServer(
      {
        command: process.execPath,
        args: ["-e", "process.stdout.write(process.env.ANTHROPIC_API_KEY + ' ' + process.cwd())"],
        cwd: tmpdir(),
      },
      env,
    );
    const output = await readAll(server.child.stdout);
    assert.equal(await server.exited, 0);
    assert.equal(output, `sk-stored ${tmpdir()}`);
  });

  it("keeps the last line of stderr to explain an early exit", async () => {
    const server = await spawnServer(
      {
        command: process.execPath,
        args: ["-e", "console.error('usage: wattson ...'); console.error(\"wattson: error: invalid choice: 'serve'\"); process.exit(2)"],
        cwd: undefined,
      },
      process.env,
    );
    const code = await server.exited;
    assert.equal(describeExit(code, server.stderr), "it exited with code 2: wattson: error: invalid choice: 'serve'");
  });
});

describe("StderrTail", () => {
  it("keeps only the newest text, in whole lines", () => {
    const tail = new StderrTail(15);
    tail.append("first line\nsecond line\n");
    tail.append("third\r\n\n");
    assert.deepEqual(tail.lastLines(5), ["d line", "third"]);
    assert.equal(describeExit(null, new StderrTail()), "it was killed");
  });
});

describe("describeLaunch", () => {
  it("quotes arguments with spaces", () => {
    assert.equal(describeLaunch({ command: "/opt/my env/python", args: ["-m", "wattson"], cwd: undefined }), '"/opt/my env/python" -m wattson');
  });
});
