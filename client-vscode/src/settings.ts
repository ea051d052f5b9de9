/**
 * Reads the `wattson.*` configuration the client itself needs: how to start the server, which
 * LLM provider's key to store, and how chatty to be. The server reads the rest through
 * `workspace/configuration`.
 */
import * as os from "node:os";
import * as path from "node:path";

import { getConfiguration } from "./vscodeapi";

export const DEFAULT_SERVER_COMMAND: readonly string[] = ["wattson", "serve"];

/** How to start `wattson serve`: a program, its arguments, and where. */
export interface ServerLaunch {
  command: string;
  args: string[];
  cwd: string | undefined;
}

export type LaunchSetting = { launch: ServerLaunch } | { problem: string };

export type NotificationLevel = "all" | "errors" | "none";

export type LlmProvider = "anthropic" | "openai-compatible" | "command";

/**
 * `wattson.server.pythonPath` wins over `wattson.server.command`, so a user who picks an
 * interpreter does not also have to edit the command.
 */
export function resolveServerLaunch(
  commandSetting: unknown,
  pythonPathSetting: unknown,
  workspaceFolder: string | undefined,
  homeDir: string = os.homedir(),
): LaunchSetting {
  const expand = (value: string): string => expandVariables(value, workspaceFolder, homeDir);
  if (typeof pythonPathSetting === "string" && pythonPathSetting.trim() !== "") {
    return {
      launch: { command: expand(pythonPathSetting.trim()), args: ["-m", "wattson", "serve"], cwd: workspaceFolder },
    };
  }
  const command = commandSetting ?? DEFAULT_SERVER_COMMAND;
  if (
    !Array.isArray(command) ||
    command.length === 0 ||
    !command.every((part) => typeof part === "string") ||
    command[0].trim() === ""
  ) {
    return {
      problem:
        'The setting wattson.server.command must be a list of strings such as ["wattson", "serve"]. ' +
        "Fix it in Settings, or set wattson.server.pythonPath instead.",
    };
  }
  const [program, ...args] = command.map(expand);
  return { launch: { command: program, args, cwd: workspaceFolder } };
}

/** Expands `~`, `${userHome}` and `${workspaceFolder}` as VS Code users expect in paths. */
export function expandVariables(value: string, workspaceFolder: string | undefined, homeDir: string): string {
  let result = value.replace(/\$\{userHome\}/g, homeDir);
  if (workspaceFolder !== undefined) {
    result = result.replace(/\$\{workspaceFolder\}/g, workspaceFolder);
  }
  if (result === "~") {
    return homeDir;
  }
  if (result.startsWith("~/") || result.startsWith("~\\")) {
    return path.join(homeDir, result.slice(2));
  }
  return result;
}

export function readServerLaunch(workspaceFolder: string | undefined): LaunchSetting {
  const config = getConfiguration("wattson");
  return resolveServerLaunch(config.get("server.command"), config.get("server.pythonPath"), workspaceFolder);
}

export function readNotificationLevel(): NotificationLevel {
  const value = getConfiguration("wattson").get<unknown>("notifications");
  return value === "errors" || value === "none" ? value : "all";
}

export function readLlmProvider(): LlmProvider {
  const value = getConfiguration("wattson").get<unknown>("llm.provider");
  return value === "openai-compatible" || value === "command" ? value : "anthropic";
}

/** Settings whose change needs a new server process rather than a configuration pull. */
export const RESTART_SETTINGS: readonly string[] = ["wattson.server.command", "wattson.server.pythonPath"];
