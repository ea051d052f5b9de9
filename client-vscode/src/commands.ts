/**
 * The palette commands. Optimize and Profile turn the active editor into the server's job
 * arguments and run the job through jobs.ts; Set API Key stores a key and restarts the server
 * so its environment carries it.
 */
import type { Disposable, TextEditor } from "vscode";

import { isCudaDocument } from "./documents";
import { type JobChannel, type JobTarget, runJob } from "./jobs";
import { findKernels, kernelAt } from "./kernels";
import { showOutput } from "./logging";
import { showJobOutcome } from "./results";
import { API_KEY_ENV_VARS, type ApiKeyStore } from "./secrets";
import { readLlmProvider, readNotificationLevel } from "./settings";
import {
  activeTextEditor,
  registerCommand,
  showErrorMessage,
  showInformationMessage,
  showInputBox,
  showQuickPick,
} from "./vscodeapi";

export const COMMANDS = {
  optimizeFile: "wattson.optimizeFile",
  optimizeKernel: "wattson.optimizeKernel",
  profileFile: "wattson.profileFile",
  setApiKey: "wattson.setApiKey",
  restartServer: "wattson.restartServer",
  showOutput: "wattson.showOutput",
} as const;

const RESTART_SERVER = "Restart Server";
const SHOW_OUTPUT = "Show Output";

/** What the commands need from the server's lifecycle. */
export interface ServerControl {
  channel(): Promise<JobChannel | undefined>;
  restart(): Promise<void>;
}

/** Runs a job on the server and shows how it ended; also the path of code lenses and code actions. */
export async function runServerJob(server: ServerControl, command: string, args: unknown[]): Promise<void> {
  const channel = await server.channel();
  if (channel === undefined) {
    const choice = await showErrorMessage("Wattson's server is not running.", RESTART_SERVER, SHOW_OUTPUT);
    if (choice === RESTART_SERVER) {
      await server.restart();
    } else if (choice === SHOW_OUTPUT) {
      showOutput();
    }
    return;
  }
  const outcome = await runJob(channel, command, args);
  // Not awaited: the command is done when the job is, not when the user closes the message.
  void showJobOutcome(outcome, readNotificationLevel());
}

/** The active CUDA/HIP editor, or undefined after telling the user what to open. */
function cudaEditor(): TextEditor | undefined {
  const editor = activeTextEditor();
  if (editor === undefined || !isCudaDocument(editor.document)) {
    void showInformationMessage("Wattson: open a .cu, .cuh or .hip file first.");
    return undefined;
  }
  if (editor.document.uri.scheme !== "file") {
    void showInformationMessage("Wattson: save the file first; the server builds it from disk.");
    return undefined;
  }
  return editor;
}

function targetOf(editor: TextEditor): JobTarget {
  return { uri: editor.document.uri.toString(), version: editor.document.version };
}

/** The kernel under the cursor, the only kernel, or the one the user picks. */
export async function chooseKernel(editor: TextEditor): Promise<string | undefined> {
  const kernels = findKernels(editor.document.getText());
  if (kernels.length === 0) {
    void showInformationMessage("Wattson: this file defines no __global__ kernel.");
    return undefined;
  }
  const underCursor = kernelAt(kernels, editor.document.offsetAt(editor.selection.active));
  if (underCursor !== undefined) {
    return underCursor.name;
  }
  if (kernels.length === 1) {
    return kernels[0].name;
  }
  const picked = await showQuickPick(
    kernels.map((kernel) => ({ label: kernel.name })),
    { placeHolder: "Which kernel should Wattson optimize for energy?" },
  );
  return picked?.label;
}

export async function setApiKey(keys: ApiKeyStore, server: ServerControl): Promise<void> {
  const provider = readLlmProvider();
  if (provider === "command") {
    void showInformationMessage(
      "Wattson: the `command` LLM provider takes no API key. Set wattson.llm.provider to " +
        "anthropic or openai-compatible to store one.",
    );
    return;
  }
  const variable = API_KEY_ENV_VARS[provider];
  const key = await showInputBox({
    title: `Wattson: ${variable}`,
    prompt: `The key for the ${provider} provider, kept in VS Code's secret storage. Leave empty to remove it.`,
    password: true,
    ignoreFocusOut: true,
  });
  if (key === undefined) {
    return; // dismissed
  }
  if (key.trim() === "") {
    await keys.delete(provider);
    void showInformationMessage(`Wattson: the stored ${variable} was removed; the server restarts without it.`);
  } else {
    await keys.store(provider, key.trim());
    void showInformationMessage(`Wattson: ${variable} stored; the server restarts with it.`);
  }
  await server.restart();
}

export function registerCommands(server: ServerControl, keys: ApiKeyStore): Disposable[] {
  return [
    registerCommand(COMMANDS.optimizeFile, async () => {
      const editor = cudaEditor();
      if (editor !== undefined) {
        await runServerJob(server, "wattson.optimize", [targetOf(editor)]);
      }
    }),
    registerCommand(COMMANDS.optimizeKernel, async () => {
      const editor = cudaEditor();
      const kernel = editor === undefined ? undefined : await chooseKernel(editor);
      if (editor !== undefined && kernel !== undefined) {
        await runServerJob(server, "wattson.optimize", [{ ...targetOf(editor), kernel }]);
      }
    }),
    registerCommand(COMMANDS.profileFile, async () => {
      const editor = cudaEditor();
      if (editor !== undefined) {
        await runServerJob(server, "wattson.profile", [targetOf(editor)]);
      }
    }),
    registerCommand(COMMANDS.setApiKey, () => setApiKey(keys, server)),
    registerCommand(COMMANDS.restartServer, () => server.restart()),
    registerCommand(COMMANDS.showOutput, () => showOutput()),
  ];
}
