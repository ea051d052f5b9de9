import * as assert from "node:assert/strict";
import { describe, it } from "node:test";

import { API_KEY_ENV_VARS, ApiKeyStore, serverEnvironment } from "../../src/secrets";
import { MemorySecrets } from "./helpers";

describe("ApiKeyStore", () => {
  it("maps each stored key to its provider's environment variable", async () => {
    const secrets = new MemorySecrets();
    const keys = new ApiKeyStore(secrets as never);
    assert.deepEqual(await keys.environment(), {});
    await keys.store("anthropic", "sk-ant-1");
    await keys.store("openai-compatible", "sk-oai-2");
    assert.deepEqual(await keys.environment(), { ANTHROPIC_API_KEY: "sk-ant-1", OPENAI_API_KEY: "sk-oai-2" });
    await keys.delete("anthropic");
    assert.deepEqual(await keys.environment(), { OPENAI_API_KEY: "sk-oai-2" });
    assert.deepEqual([...secrets.values.keys()], ["wattson.apiKey.openai-compatible"]);
  });

  it("names the variables the SDKs read", () => {
    assert.deepEqual(API_KEY_ENV_VARS, { anthropic: "ANTHROPIC_API_KEY", "openai-compatible": "OPENAI_API_KEY" });
  });
});

describe("serverEnvironment", () => {
  it("keeps the inherited environment and lets stored keys win", () => {
    const env = serverEnvironment({ PATH: "/bin", ANTHROPIC_API_KEY: "old" }, { ANTHROPIC_API_KEY: "new" });
    assert.deepEqual(env, { PATH: "/bin", ANTHROPIC_API_KEY: "new" });
  });
});
