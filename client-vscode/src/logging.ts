/**
 * The "Wattson" output channel: the extension's own log lines and, through the language client,
 * the server's stderr and LSP trace. Nothing secret is ever written here: callers log commands
 * and paths, never the server's environment.
 */
import type { LogOutputChannel } from "vscode";

import { createLogOutputChannel } from "./vscodeapi";

export const OUTPUT_CHANNEL_NAME = "Wattson";

let channel: LogOutputChannel | undefined;

export function outputChannel(): LogOutputChannel {
  channel ??= createLogOutputChannel(OUTPUT_CHANNEL_NAME);
  return channel;
}

export function logInfo(message: string): void {
  outputChannel().info(message);
}

export function logError(message: string, error?: unknown): void {
  outputChannel().error(error === undefined ? message : `${message}: ${describeError(error)}`);
}

export function showOutput(): void {
  outputChannel().show(true);
}

export function describeError(error: unknown): string {
  if (error instanceof Error) {
    return error.message;
  }
  return String(error);
}
