/**
 * Runs a server job (`wattson.optimize`, `wattson.profile`) behind a progress notification the
 * client owns: it creates the workDoneToken, sends `workspace/executeCommand` with it, shows each
 * `$/progress` stage in the notification, and turns Cancel into a cancelled request.
 */
import { randomUUID } from "node:crypto";

import {
  type CancellationToken,
  ErrorCodes,
  LSPErrorCodes,
  ExecuteCommandRequest,
  type ExecuteCommandParams,
  ResponseError,
  WorkDoneProgress,
  type WorkDoneProgressBegin,
  WorkDoneProgressCancelNotification,
  type WorkDoneProgressCancelParams,
  type WorkDoneProgressEnd,
  type WorkDoneProgressReport,
} from "vscode-languageserver-protocol";

import { withNotificationProgress } from "./vscodeapi";

/** Commands the server runs as long jobs; everything else goes straight to the server. */
export const JOB_COMMANDS: ReadonlySet<string> = new Set(["wattson.optimize", "wattson.profile"]);

/**
 * The statuses of docs/lsp.md, and any other the server may add (a profile answers "done"):
 * the client acts only on "cancelled", so it reads the others without judging them.
 */
export type JobStatus = "applied" | "proposed" | "no-improvement" | "failed" | "cancelled" | "stale" | (string & {});

/** What the server answers when a job ends (docs/lsp.md). */
export interface JobResult {
  status: JobStatus;
  message: string;
  report_uri: string | null;
}

const CANCELLED = Symbol("cancelled");

export type JobOutcome =
  | { kind: "finished"; result: JobResult }
  | { kind: "cancelled" }
  | { kind: "failed"; message: string };

/** The part of a language client (or any JSON-RPC connection) a job needs. */
export interface JobChannel {
  sendRequest(
    type: typeof ExecuteCommandRequest.type,
    params: ExecuteCommandParams,
    token?: CancellationToken,
  ): Promise<unknown>;
  onProgress(
    type: typeof WorkDoneProgress.type,
    token: string | number,
    handler: (value: WorkDoneProgressBegin | WorkDoneProgressReport | WorkDoneProgressEnd) => void,
  ): { dispose(): void };
  sendNotification(
    type: typeof WorkDoneProgressCancelNotification.type,
    params: WorkDoneProgressCancelParams,
  ): Promise<void>;
}

/** Arguments of the job commands, as the server defines them. */
export interface JobTarget {
  uri: string;
  version: number;
  kernel?: string;
}

/**
 * VS Code's notification takes increments; the server reports absolute percentages.
 * Percentages that go backwards (a new stage restarting at 0) add nothing.
 */
export class ProgressTracker {
  private reportedPercent = 0;

  update(value: WorkDoneProgressBegin | WorkDoneProgressReport | WorkDoneProgressEnd): {
    message?: string;
    increment?: number;
  } {
    const step: { message?: string; increment?: number } = {};
    if (value.message !== undefined && value.message !== "") {
      step.message = value.message;
    }
    if (value.kind !== "end" && typeof value.percentage === "number") {
      const percent = Math.min(100, Math.max(0, value.percentage));
      if (percent > this.reportedPercent) {
        step.increment = percent - this.reportedPercent;
        this.reportedPercent = percent;
      }
    }
    return step;
  }
}

export function jobTitle(command: string, target: JobTarget | undefined): string {
  const file = target === undefined ? "" : fileName(target.uri);
  if (command === "wattson.profile") {
    return `Wattson: profiling ${file}`.trimEnd();
  }
  if (target?.kernel !== undefined) {
    return `Wattson: optimizing kernel ${target.kernel} in ${file}`;
  }
  return `Wattson: optimizing ${file} for energy`;
}

function fileName(uri: string): string {
  const path = uri.split("?")[0].split("#")[0];
  return decodeURIComponent(path.slice(path.lastIndexOf("/") + 1));
}

export function asJobTarget(args: readonly unknown[]): JobTarget | undefined {
  const first = args[0];
  if (typeof first !== "object" || first === null) {
    return undefined;
  }
  const candidate = first as Record<string, unknown>;
  if (typeof candidate.uri !== "string" || typeof candidate.version !== "number") {
    return undefined;
  }
  const target: JobTarget = { uri: candidate.uri, version: candidate.version };
  if (typeof candidate.kernel === "string") {
    target.kernel = candidate.kernel;
  }
  return target;
}

export function parseJobResult(value: unknown): JobResult | undefined {
  if (typeof value !== "object" || value === null) {
    return undefined;
  }
  const candidate = value as Record<string, unknown>;
  if (typeof candidate.status !== "string" || candidate.status === "") {
    return undefined;
  }
  return {
    status: candidate.status,
    message: typeof candidate.message === "string" ? candidate.message : "",
    report_uri: typeof candidate.report_uri === "string" ? candidate.report_uri : null,
  };
}

/** How long the notification waits for the server to confirm a cancel before it closes anyway. */
export const CANCEL_GRACE_MS = 5000;

/** Runs one job to its end; never throws for what the server or the user did. */
export async function runJob(
  channel: JobChannel,
  command: string,
  args: unknown[],
  cancelGraceMs: number = CANCEL_GRACE_MS,
): Promise<JobOutcome> {
  return withNotificationProgress(jobTitle(command, asJobTarget(args)), async (progress, cancellation) => {
    const workDoneToken = `wattson-${randomUUID()}`;
    const tracker = new ProgressTracker();
    const progressSubscription = channel.onProgress(WorkDoneProgress.type, workDoneToken, (value) =>
      progress.report(tracker.update(value)),
    );
    // $/cancelRequest goes out through the request's token; the progress cancel reaches a server
    // that runs the job apart from the request.
    let graceTimer: NodeJS.Timeout | undefined;
    let cancelSubscription: { dispose(): void } | undefined;
    const givenUp = new Promise<typeof CANCELLED>((resolve) => {
      cancelSubscription = cancellation.onCancellationRequested(() => {
        channel.sendNotification(WorkDoneProgressCancelNotification.type, { token: workDoneToken }).catch(() => {
          // The connection is gone: there is nothing left to cancel.
        });
        graceTimer = setTimeout(() => resolve(CANCELLED), cancelGraceMs);
      });
    });
    try {
      const reply = await Promise.race([
        channel.sendRequest(ExecuteCommandRequest.type, { command, arguments: args, workDoneToken }, cancellation),
        givenUp,
      ]);
      if (reply === CANCELLED || cancellation.isCancellationRequested) {
        return { kind: "cancelled" };
      }
      const result = parseJobResult(reply);
      if (result === undefined) {
        return { kind: "failed", message: `The server answered ${command} with an unexpected result.` };
      }
      return result.status === "cancelled" ? { kind: "cancelled" } : { kind: "finished", result };
    } catch (error) {
      return outcomeOfError(error, cancellation.isCancellationRequested);
    } finally {
      progressSubscription.dispose();
      cancelSubscription?.dispose();
      clearTimeout(graceTimer);
    }
  });
}

function outcomeOfError(error: unknown, cancelled: boolean): JobOutcome {
  if (
    cancelled ||
    (error instanceof ResponseError &&
      (error.code === LSPErrorCodes.RequestCancelled || error.code === LSPErrorCodes.ServerCancelled))
  ) {
    return { kind: "cancelled" };
  }
  if (error instanceof ResponseError && error.code === ErrorCodes.ConnectionInactive) {
    return { kind: "failed", message: "Wattson's server is not running." };
  }
  return { kind: "failed", message: error instanceof Error ? error.message : String(error) };
}
