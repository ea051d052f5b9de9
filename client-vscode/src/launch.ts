/**
 * Starts the `wattson serve` process. The client spawns it itself, rather than letting the
 * language client do it, so a missing program or an early exit becomes one clear message
 * with its cause (exit code, last lines of stderr) instead of a generic connection error.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync } from "node:fs";

import type { ServerLaunch } from "./settings";

const STDERR_GRACE_MS = 500;

/** Why the server could not start, in words for the user. */
export class LaunchError extends Error {}

/** Keeps the last lines the server wrote to stderr, to quote when it dies. */
export class StderrTail {
  private text = "";

  constructor(private readonly maxChars = 4000) {}

  append(chunk: string): void {
    this.text = (this.text + chunk).slice(-this.maxChars);
  }

  lastLines(count: number): string[] {
    return this.text
      .split(/\r?\n/)
      .map((line) => line.trimEnd())
      .filter((line) => line !== "")
      .slice(-count);
  }
}

export interface ServerProcess {
  child: ChildProcessWithoutNullStreams;
  stderr: StderrTail;
  /** Settles when the process exits and its stderr is read, with its code (null when killed). */
  exited: Promise<number | null>;
}

export function describeLaunch(launch: ServerLaunch): string {
  return [launch.command, ...launch.args].map((part) => (/\s/.test(part) ? JSON.stringify(part) : part)).join(" ");
}

/** Resolves once the operating system has started the program; rejects with a LaunchError. */
export function spawnServer(launch: ServerLaunch, env: NodeJS.ProcessEnv): Promise<ServerProcess> {
  return new Promise((resolve, reject) => {
    let child: ChildProcessWithoutNullStreams;
    try {
      child = spawn(launch.command, launch.args, { cwd: launch.cwd, env, stdio: "pipe", windowsHide: true });
    } catch (error) {
      reject(new LaunchError(`\`${launch.command}\` could not be run: ${String(error)}`));
      return;
    }
    const stderr = new StderrTail();
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => stderr.append(chunk));
    const stderrEnded = new Promise<void>((settle) => child.stderr.once("close", settle));
    // Waits a moment for the last stderr lines, but not for a grandchild that holds the pipe open.
    const exited = new Promise<number | null>((settle) =>
      child.once("exit", (code) => {
        const grace = setTimeout(() => settle(code), STDERR_GRACE_MS);
        void stderrEnded.then(() => {
          clearTimeout(grace);
          settle(code);
        });
      }),
    );
    child.once("error", (error: NodeJS.ErrnoException) => reject(new LaunchError(spawnFailure(launch, error))));
    child.once("spawn", () => resolve({ child, stderr, exited }));
  });
}

function spawnFailure(launch: ServerLaunch, error: NodeJS.ErrnoException): string {
  if (error.code === "ENOENT") {
    // Node reports a missing working directory as a missing program: tell them apart.
    return launch.cwd !== undefined && !existsSync(launch.cwd)
      ? `its working folder ${launch.cwd} does not exist`
      : `\`${launch.command}\` was not found`;
  }
  if (error.code === "EACCES") {
    return `\`${launch.command}\` is not executable`;
  }
  return `\`${launch.command}\` could not be run: ${error.message}`;
}

/** The cause of an early exit, as one line: exit code and the last line of stderr. */
export function describeExit(code: number | null, stderr: StderrTail): string {
  const status = code === null ? "it was killed" : `it exited with code ${code}`;
  const last = stderr.lastLines(1)[0];
  return last === undefined ? status : `${status}: ${last}`;
}
