/**
 * The language server's lifecycle: spawn `wattson serve` with the API keys in its environment,
 * connect a language client to it, restart it on request, and say clearly, with a fix, when it
 * does not start or stops.
 */
import type { Disposable } from "vscode";
import {
  CloseAction,
  ErrorAction,
  LanguageClient,
  type LanguageClientOptions,
  RevealOutputChannelOn,
} from "vscode-languageclient/node";

import { DOCUMENT_SELECTOR } from "./documents";
import { JOB_COMMANDS, type JobChannel } from "./jobs";
import { describeExit, describeLaunch, LaunchError, type ServerProcess, spawnServer } from "./launch";
import { describeError, logError, logInfo, outputChannel, showOutput } from "./logging";
import { showDocumentMiddleware } from "./reports";
import { type ApiKeyStore, serverEnvironment } from "./secrets";
import { readServerLaunch } from "./settings";
import { executeCommand, showErrorMessage, workspaceFolderPaths } from "./vscodeapi";

export const SHOW_OUTPUT = "Show Output";
export const OPEN_SETTINGS = "Open Settings";
export const RESTART_SERVER = "Restart Server";
export const RESTART_COMMAND = "wattson.restartServer";

/** What the rest of the extension plugs into each new client. */
export interface ServerHooks {
  /** Runs a job command (a code lens, a code action or the palette) with the client's UI. */
  runJob(command: string, args: unknown[]): Promise<void>;
  /** Registers notification handlers on a client that has just started. */
  onStarted(client: LanguageClient): Disposable[];
}

export function startFailureMessage(detail: string): string {
  return (
    `Wattson's server did not start (${detail}): install it with \`pip install wattson\` ` +
    "or set wattson.server.command."
  );
}

export class WattsonServer {
  private client: LanguageClient | undefined;
  private process: ServerProcess | undefined;
  private clientDisposables: Disposable[] = [];
  private pending: Promise<void> = Promise.resolve();

  constructor(
    private readonly keys: ApiKeyStore,
    private readonly hooks: ServerHooks,
  ) {}

  /** The running client, once any start or restart in progress has finished. */
  async channel(): Promise<JobChannel | undefined> {
    await this.pending;
    return this.client?.isRunning() === true ? this.client : undefined;
  }

  start(): Promise<void> {
    return this.enqueue(() => this.launch());
  }

  restart(): Promise<void> {
    return this.enqueue(async () => {
      await this.shutdown();
      await this.launch();
    });
  }

  stop(): Promise<void> {
    return this.enqueue(() => this.shutdown());
  }

  /** Starts and stops run one at a time, in the order they were asked for. */
  private enqueue(step: () => Promise<void>): Promise<void> {
    this.pending = this.pending.then(step, step);
    return this.pending;
  }

  private async launch(): Promise<void> {
    const folder = workspaceFolderPaths()[0];
    const setting = readServerLaunch(folder);
    if ("problem" in setting) {
      logError(setting.problem);
      void this.report(`Wattson's server did not start: ${setting.problem}`, OPEN_SETTINGS, SHOW_OUTPUT);
      return;
    }
    const launch = setting.launch;
    // The command and folder are logged; the environment, which holds the API keys, never is.
    logInfo(`Starting the server: ${describeLaunch(launch)}${launch.cwd ? ` (in ${launch.cwd})` : ""}`);
    let serverProcess: ServerProcess;
    try {
      serverProcess = await spawnServer(launch, serverEnvironment(process.env, await this.keys.environment()));
    } catch (error) {
      const detail = error instanceof LaunchError ? error.message : describeError(error);
      logError(startFailureMessage(detail));
      void this.report(startFailureMessage(detail), SHOW_OUTPUT, OPEN_SETTINGS);
      return;
    }
    let client: LanguageClient | undefined;
    try {
      client = new LanguageClient("wattson", "Wattson", () => Promise.resolve(serverProcess.child), this.clientOptions());
      this.client = client;
      this.process = serverProcess;
      await client.start();
    } catch (error) {
      const exitCode = await Promise.race([serverProcess.exited, delay(2000).then(() => undefined)]);
      const detail = exitCode === undefined ? describeError(error) : describeExit(exitCode, serverProcess.stderr);
      logError(startFailureMessage(detail));
      if (client !== undefined) {
        this.forget(client);
      }
      serverProcess.child.kill();
      void this.report(startFailureMessage(detail), SHOW_OUTPUT, OPEN_SETTINGS);
      return;
    }
    logInfo(`Server started (process ${serverProcess.child.pid ?? "?"}).`);
    this.clientDisposables = this.hooks.onStarted(client);
    void serverProcess.exited.then((code) => this.onExit(client, code, serverProcess));
  }

  private onExit(client: LanguageClient, code: number | null, serverProcess: ServerProcess): void {
    if (this.client !== client) {
      return; // stopped on purpose
    }
    const detail = describeExit(code, serverProcess.stderr);
    logError(`Wattson's server stopped (${detail}).`);
    this.forget(client);
    void client.stop().catch(() => undefined);
    void this.report(`Wattson's server stopped (${detail}).`, RESTART_SERVER, SHOW_OUTPUT);
  }

  private async shutdown(): Promise<void> {
    const client = this.client;
    const serverProcess = this.process;
    if (client === undefined) {
      return;
    }
    this.forget(client);
    try {
      await client.stop(5000);
    } catch (error) {
      logError("The server did not stop cleanly", error);
    }
    if (serverProcess !== undefined && serverProcess.child.exitCode === null) {
      serverProcess.child.kill();
    }
    logInfo("Server stopped.");
  }

  private forget(client: LanguageClient): void {
    if (this.client === client) {
      this.client = undefined;
      this.process = undefined;
    }
    for (const disposable of this.clientDisposables) {
      disposable.dispose();
    }
    this.clientDisposables = [];
  }

  private async report(message: string, ...buttons: string[]): Promise<void> {
    const choice = await showErrorMessage(message, ...buttons);
    if (choice === SHOW_OUTPUT) {
      showOutput();
    } else if (choice === OPEN_SETTINGS) {
      await executeCommand("workbench.action.openSettings", "wattson.server");
    } else if (choice === RESTART_SERVER) {
      await executeCommand(RESTART_COMMAND);
    }
  }

  private clientOptions(): LanguageClientOptions {
    return {
      documentSelector: DOCUMENT_SELECTOR,
      outputChannel: outputChannel(),
      traceOutputChannel: outputChannel(),
      // This class says what went wrong, once, with a fix; the client's own pop-ups would repeat it.
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      initializationFailedHandler: () => false,
      errorHandler: {
        error: (_error, _message, count) => ({
          action: (count ?? 0) <= 3 ? ErrorAction.Continue : ErrorAction.Shutdown,
          handled: true,
        }),
        closed: () => ({ action: CloseAction.DoNotRestart, handled: true }),
      },
      // The server pulls `wattson.*` through workspace/configuration; this tells it when to pull.
      synchronize: { configurationSection: "wattson" },
      middleware: {
        executeCommand: async (command, args, next) =>
          JOB_COMMANDS.has(command) ? this.hooks.runJob(command, args) : next(command, args),
        window: { showDocument: showDocumentMiddleware },
      },
    };
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
