/**
 * What the client says when a job ends. The server announces results itself (window/showMessage,
 * honouring `wattson.notifications`) and opens the report (window/showDocument), for every
 * editor alike; the client adds only what the server cannot say: that the request itself failed.
 */
import type { JobOutcome } from "./jobs";
import { logError, showOutput } from "./logging";
import type { NotificationLevel } from "./settings";
import { showErrorMessage } from "./vscodeapi";

export const SHOW_OUTPUT = "Show Output";

/** Resolves when the user has answered the message (or at once when none is shown). */
export async function showJobOutcome(outcome: JobOutcome, level: NotificationLevel): Promise<void> {
  if (outcome.kind !== "failed") {
    return;
  }
  logError(`The job failed: ${outcome.message}`);
  if (level === "none") {
    return;
  }
  if ((await showErrorMessage(`Wattson: ${outcome.message}`, SHOW_OUTPUT)) === SHOW_OUTPUT) {
    showOutput();
  }
}
