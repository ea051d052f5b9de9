/**
 * Wattson for VS Code: wires the server's lifecycle, the commands, the status bar and the
 * settings together. The behaviour lives in the modules it imports.
 */
import type { ExtensionContext } from "vscode";

import { COMMANDS, registerCommands, runServerJob } from "./commands";
import { logInfo, outputChannel } from "./logging";
import { ApiKeyStore } from "./secrets";
import { RESTART_SETTINGS } from "./settings";
import { ENERGY_MEASURED_NOTIFICATION, EnergyStatusBar, parseEnergyMeasurement } from "./statusBar";
import { WattsonServer } from "./server";
import { activeTextEditor, onDidChangeActiveTextEditor, onDidChangeConfiguration } from "./vscodeapi";

let server: WattsonServer | undefined;

export function activate(context: ExtensionContext): void {
  const keys = new ApiKeyStore(context.secrets);
  const statusBar = new EnergyStatusBar(COMMANDS.profileFile);
  const wattson: WattsonServer = new WattsonServer(keys, {
    runJob: (command, args): Promise<void> => runServerJob(wattson, command, args),
    onStarted: (client) => [
      client.onNotification(ENERGY_MEASURED_NOTIFICATION, (params: unknown) => {
        const measurement = parseEnergyMeasurement(params);
        if (measurement !== undefined) {
          statusBar.record(measurement, activeTextEditor());
        }
      }),
    ],
  });
  server = wattson;

  context.subscriptions.push(
    outputChannel(),
    statusBar,
    ...registerCommands(wattson, keys),
    onDidChangeActiveTextEditor((editor) => statusBar.show(editor)),
    onDidChangeConfiguration((event) => {
      if (RESTART_SETTINGS.some((setting) => event.affectsConfiguration(setting))) {
        logInfo("The server's launch settings changed: restarting it.");
        void wattson.restart();
      }
    }),
  );
  statusBar.show(activeTextEditor());
  // Not awaited: activation should not wait for Python to start; commands wait on their own.
  void wattson.start();
}

export async function deactivate(): Promise<void> {
  await server?.stop();
  server = undefined;
}
