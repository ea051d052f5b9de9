/**
 * Reports are Markdown files with plots beside them. When the server asks to show one
 * (`window/showDocument`), it opens in VS Code's Markdown preview, which renders the plots,
 * instead of as source text.
 */
import {
  CancellationToken,
  ResponseError,
  type ShowDocumentParams,
  type ShowDocumentRequest,
  type ShowDocumentResult,
} from "vscode-languageserver-protocol";

import { logError } from "./logging";
import { executeCommand, parseUri } from "./vscodeapi";

export function isMarkdownReport(uri: string): boolean {
  const path = uri.split(/[?#]/)[0].toLowerCase();
  return path.endsWith(".md") || path.endsWith(".markdown");
}

/**
 * Opens a report in the Markdown preview. Beside the editor unless asked to take focus, so the
 * source stays in view while its refactor preview comes up.
 */
export async function openReport(uri: string, beside: boolean): Promise<boolean> {
  try {
    await executeCommand(beside ? "markdown.showPreviewToSide" : "markdown.showPreview", parseUri(uri));
    return true;
  } catch (error) {
    logError(`Could not open the report ${uri}`, error);
    return false;
  }
}

/** Language-client middleware for `window/showDocument`. */
export async function showDocumentMiddleware(
  params: ShowDocumentParams,
  next: ShowDocumentRequest.HandlerSignature,
): Promise<ShowDocumentResult> {
  if (params.external !== true && isMarkdownReport(params.uri)) {
    return { success: await openReport(params.uri, params.takeFocus !== true) };
  }
  const shown = await next(params, CancellationToken.None);
  return shown instanceof ResponseError ? { success: false } : shown;
}
