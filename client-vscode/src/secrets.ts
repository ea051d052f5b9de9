/**
 * API keys for the LLM providers, kept in VS Code's SecretStorage and handed to the server only
 * through its process environment: never in settings, initialization options or the log.
 */
import type { SecretStorage } from "vscode";

import type { LlmProvider } from "./settings";

export type KeyedProvider = Exclude<LlmProvider, "command">;

/** The environment variable each provider's SDK reads its key from. */
export const API_KEY_ENV_VARS: Readonly<Record<KeyedProvider, string>> = {
  anthropic: "ANTHROPIC_API_KEY",
  "openai-compatible": "OPENAI_API_KEY",
};

const KEYED_PROVIDERS = Object.keys(API_KEY_ENV_VARS) as KeyedProvider[];

function secretName(provider: KeyedProvider): string {
  return `wattson.apiKey.${provider}`;
}

export class ApiKeyStore {
  constructor(private readonly secrets: SecretStorage) {}

  async get(provider: KeyedProvider): Promise<string | undefined> {
    return this.secrets.get(secretName(provider));
  }

  async store(provider: KeyedProvider, key: string): Promise<void> {
    await this.secrets.store(secretName(provider), key);
  }

  async delete(provider: KeyedProvider): Promise<void> {
    await this.secrets.delete(secretName(provider));
  }

  /** The variables to add to the server's environment, one per stored key. */
  async environment(): Promise<Record<string, string>> {
    const variables: Record<string, string> = {};
    for (const provider of KEYED_PROVIDERS) {
      const key = await this.get(provider);
      if (key !== undefined && key !== "") {
        variables[API_KEY_ENV_VARS[provider]] = key;
      }
    }
    return variables;
  }
}

/** A stored key wins over one inherited from the editor's environment: the user set it last. */
export function serverEnvironment(
  inherited: NodeJS.ProcessEnv,
  keys: Record<string, string>,
): NodeJS.ProcessEnv {
  return { ...inherited, ...keys };
}
