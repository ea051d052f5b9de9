#!/usr/bin/env node
// End-to-end test of the Wattson extension in a real VS Code: code-server, driven through headless
// Chromium by playwright-core. It installs the packaged .vsix into a throw-away profile, opens a
// copy of a workspace with a .cu file, and checks what a user would see. Screenshots go to the
// artifacts folder; look at them.
//
//   node e2e/run-e2e.mjs [--scenario=optimize|profile|server-missing] [--vsix=PATH] [--artifacts=DIR] [--keep]
//
// Scenarios:
//   optimize        (Set API Key,) "Wattson: Optimize for Energy": progress, refactor preview, report,
//                   apply, code lens; then Profile Energy on the result: joules in the status bar
//   profile         "Wattson: Profile Energy" cancelled, then run to the end: the status bar shows joules
//   server-missing  no server installed: the "did not start" message, its Show Output button, the palette
//
// Environment:
//   WATTSON_E2E_SERVER_CMD  JSON array that starts the language server (required but for server-missing)
//   WATTSON_E2E_WORKSPACE   folder to open (copied first); default: e2e/fixture
//   WATTSON_E2E_FILE        file to open in it, relative; default: the first .cu file
//   WATTSON_E2E_TIMEOUT_S   how long the optimize job may take; default 300
//   WATTSON_E2E_API_KEY     optimize: typed into "Wattson: Set API Key" first (the fake LLM's key)
//   WATTSON_E2E_EXPECTED_FILE  optimize: what the file must hold once the result is applied and saved
//   CODE_SERVER             code-server launcher; default /opt/cs/node_modules/.bin/code-server
//   CODE_SERVER_NODE_DIR    folder with Node 24 for code-server; default /opt/node24/node_modules/node/bin
//   CHROMIUM                browser; default /usr/bin/chromium
import { spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const extensionRoot = path.resolve(here, "..");

const options = Object.fromEntries(
  process.argv.slice(2).map((arg) => {
    const [key, value] = arg.replace(/^--/, "").split("=");
    return [key, value ?? true];
  }),
);
const scenario = options.scenario ?? "optimize";
const artifacts = path.resolve(options.artifacts ?? path.join(here, "artifacts"), scenario);
const codeServer = process.env.CODE_SERVER ?? "/opt/cs/node_modules/.bin/code-server";
const codeServerNodeDir = process.env.CODE_SERVER_NODE_DIR ?? "/opt/node24/node_modules/node/bin";
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const jobTimeoutMs = Number(process.env.WATTSON_E2E_TIMEOUT_S ?? 300) * 1000;
const uiTimeoutMs = 90_000;

const results = [];
let shotCount = 0;

function fail(message) {
  console.error(`run-e2e: ${message}`);
  process.exit(2);
}

async function step(name, action) {
  const started = Date.now();
  try {
    await action();
    results.push({ name, ok: true });
    console.log(`ok   ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } catch (error) {
    results.push({ name, ok: false });
    console.log(`FAIL ${name}: ${error instanceof Error ? error.message.split("\n")[0] : error}`);
    throw error;
  }
}

async function screenshot(page, name) {
  shotCount++;
  const file = path.join(artifacts, `${String(shotCount).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file });
  console.log(`     screenshot ${path.relative(process.cwd(), file)}`);
}

function newestVsix() {
  if (typeof options.vsix === "string") {
    return path.resolve(options.vsix);
  }
  const packages = readdirSync(extensionRoot)
    .filter((name) => /^wattson-.*\.vsix$/.test(name))
    .map((name) => path.join(extensionRoot, name))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (packages.length === 0) {
    fail("no wattson-*.vsix here: run `npm run package` first, or pass --vsix=PATH.");
  }
  return packages[0];
}

function serverCommand() {
  if (scenario === "server-missing") {
    return ["wattson-e2e-no-such-server", "serve"];
  }
  const raw = process.env.WATTSON_E2E_SERVER_CMD;
  if (raw === undefined) {
    fail('set WATTSON_E2E_SERVER_CMD to a JSON array that starts the server, e.g. ["wattson", "serve"].');
  }
  const command = JSON.parse(raw);
  if (!Array.isArray(command) || command.length === 0 || !command.every((part) => typeof part === "string")) {
    fail("WATTSON_E2E_SERVER_CMD must be a JSON array of strings.");
  }
  return command;
}

function firstCudaFile(folder) {
  for (const entry of readdirSync(folder, { withFileTypes: true })) {
    if (entry.isFile() && entry.name.endsWith(".cu")) {
      return entry.name;
    }
  }
  for (const entry of readdirSync(folder, { withFileTypes: true })) {
    if (entry.isDirectory() && !entry.name.startsWith(".")) {
      const inside = firstCudaFile(path.join(folder, entry.name));
      if (inside !== undefined) {
        return path.join(entry.name, inside);
      }
    }
  }
  return undefined;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

async function waitForHttp(url, deadlineMs) {
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(url);
      if (response.ok) {
        return;
      }
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`code-server did not answer at ${url}`);
}

async function runPalette(page, title, rowTimeoutMs = uiTimeoutMs) {
  await page.locator(".monaco-workbench").click({ position: { x: 700, y: 400 } });
  await page.keyboard.press("F1");
  const input = page.locator(".quick-input-widget input");
  await input.waitFor({ state: "visible", timeout: uiTimeoutMs });
  await input.fill(`>${title}`);
  const row = page.locator(".quick-input-list .monaco-list-row", { hasText: title }).first();
  await row.waitFor({ state: "visible", timeout: rowTimeoutMs });
  await page.keyboard.press("Enter");
}

async function openFile(page, relativePath) {
  const name = path.basename(relativePath);
  const input = page.locator(".quick-input-widget input");
  const match = page.locator(".quick-input-list .monaco-list-row", { hasText: name }).first();
  // Quick Open finds files only once the workspace is indexed: ask again until it lists this one.
  const deadline = Date.now() + uiTimeoutMs;
  for (;;) {
    await page.locator(".monaco-workbench .part.editor").click({ position: { x: 300, y: 200 } });
    await page.keyboard.press("Control+P");
    await input.waitFor({ state: "visible", timeout: uiTimeoutMs });
    await input.fill(relativePath);
    try {
      await match.waitFor({ timeout: 3000 });
      break;
    } catch (error) {
      if (Date.now() > deadline) {
        throw error;
      }
      await page.keyboard.press("Escape");
    }
  }
  await page.keyboard.press("Enter");
  await page.locator(".tabs-container .tab.active", { hasText: name }).first().waitFor({ timeout: uiTimeoutMs });
  await page.locator(".monaco-editor .view-lines").first().waitFor({ timeout: uiTimeoutMs });
}

function toast(page, text) {
  return page.locator(".notifications-toasts .notification-toast", { hasText: text }).first();
}

async function serverMissingScenario(page) {
  await step('the extension says the server did not start, with a fix', async () => {
    const message = toast(page, "Wattson's server did not start");
    await message.waitFor({ timeout: uiTimeoutMs });
    const text = await message.innerText();
    if (!text.includes("pip install wattson") || !text.includes("wattson.server.command")) {
      throw new Error(`the message lacks the fix: ${text}`);
    }
    await screenshot(page, "server-did-not-start");
  });
  await step("Show Output opens the Wattson log with the command it tried", async () => {
    await toast(page, "Wattson's server did not start").getByRole("button", { name: "Show Output" }).click();
    await page
      .locator(".part.panel .view-lines", { hasText: "Starting the server: wattson-e2e-no-such-server serve" })
      .first()
      .waitFor({ timeout: uiTimeoutMs });
    await screenshot(page, "output-channel");
  });
  await step("a .hip file opens as CUDA C++", async () => {
    await openFile(page, "scale.hip");
    await page.locator(".statusbar-item", { hasText: "CUDA C++" }).first().waitFor({ timeout: uiTimeoutMs });
    await screenshot(page, "hip-file");
  });
  await step("the palette offers the Wattson commands", async () => {
    await page.locator(".monaco-editor .view-lines").first().click();
    await page.keyboard.press("F1");
    const input = page.locator(".quick-input-widget input");
    await input.fill(">Wattson:");
    for (const title of ["Optimize for Energy", "Optimize Kernel for Energy", "Profile Energy", "Set API Key", "Restart Server", "Show Output"]) {
      await page.locator(".quick-input-list .monaco-list-row", { hasText: `Wattson: ${title}` }).first().waitFor({ timeout: uiTimeoutMs });
    }
    await screenshot(page, "palette");
    await page.keyboard.press("Escape");
  });
}

/** Scrolls the editor to the first kernel of the file as it is on disk: code lenses render only in view. */
async function showFirstKernel(page, workspace, file) {
  const lines = readFileSync(path.join(workspace, file), "utf8").split("\n");
  const index = lines.findIndex((line) => line.includes("__global__"));
  if (index < 0) {
    return;
  }
  await page.locator(".monaco-editor .view-lines").first().click();
  await page.keyboard.press("F1");
  const input = page.locator(".quick-input-widget input");
  await input.waitFor({ state: "visible", timeout: uiTimeoutMs });
  await input.fill(`:${index + 1}`);
  await page.keyboard.press("Enter");
  await page.locator(".quick-input-widget").waitFor({ state: "hidden", timeout: uiTimeoutMs });
}

async function codeLensStep(page, workspace, file) {
  await step("the server's code lens appears above the kernel", async () => {
    await showFirstKernel(page, workspace, file);
    await page.locator(".codelens-decoration", { hasText: "Optimize" }).first().waitFor({ timeout: uiTimeoutMs });
    await screenshot(page, "code-lens");
  });
}

async function profileScenario(page, file) {
  await step("the server's Profile energy source action runs under the client's progress notification", async () => {
    // The server may still be starting: ask again until it offers its actions.
    const action = page.locator(".action-widget").getByText("Profile energy", { exact: true });
    const deadline = Date.now() + uiTimeoutMs;
    for (;;) {
      try {
        // VS Code lists "Source Action..." only once a code action provider is registered.
        await runPalette(page, "Source Action...", 3000);
        await action.waitFor({ timeout: 3000 });
        break;
      } catch (error) {
        if (Date.now() > deadline) {
          throw error;
        }
        await page.keyboard.press("Escape");
        await page.waitForTimeout(2000);
      }
    }
    await action.click();
    // The client's own title: the code action went through its middleware, not the bare command.
    await toast(page, `Wattson: profiling ${path.basename(file)}`).waitFor({ timeout: uiTimeoutMs });
    await page.waitForTimeout(500); // let the toast finish sliding in
    await screenshot(page, "profile-progress");
  });
  await step("Cancel on the progress notification stops the job on the server", async () => {
    const progress = toast(page, "Wattson: profiling");
    await progress.getByRole("button", { name: "Cancel" }).click();
    await progress.waitFor({ state: "hidden", timeout: uiTimeoutMs });
    // The server keeps one job per document: a job that was not really cancelled refuses the next.
    await page.waitForTimeout(3000);
  });
  await step('"Wattson: Profile Energy" runs to the end and the status bar shows the energy', async () => {
    await runPalette(page, "Wattson: Profile Energy");
    await toast(page, "Wattson: profiling").waitFor({ timeout: uiTimeoutMs });
    const energy = page.locator(".statusbar-item", { hasText: /⚡ \d[\d.]* J/ }).first();
    const refused = toast(page, "already");
    await Promise.race([
      energy.waitFor({ timeout: jobTimeoutMs }),
      refused.waitFor({ timeout: jobTimeoutMs }).then(async () => {
        throw new Error(`the server refused the second job: ${await refused.innerText()}`);
      }),
    ]);
    console.log(`     status bar: ${(await energy.innerText()).trim()}`);
    await page.waitForTimeout(500); // let the result's toast finish sliding in
    await screenshot(page, "status-bar-energy");
  });
}

async function setApiKeyStep(page, key) {
  await step('"Wattson: Set API Key" stores the key and restarts the server with it', async () => {
    await runPalette(page, "Wattson: Set API Key");
    const input = page.locator(".quick-input-widget input");
    await page.locator(".quick-input-widget", { hasText: "ANTHROPIC_API_KEY" }).first().waitFor({ timeout: uiTimeoutMs });
    if ((await input.getAttribute("type")) !== "password") {
      throw new Error("the key's input box does not hide what is typed");
    }
    await input.fill(key);
    await page.keyboard.press("Enter");
    await toast(page, "ANTHROPIC_API_KEY stored").waitFor({ timeout: uiTimeoutMs });
  });
}

/**
 * Waits for what a job should end with; when the job's progress notification has gone and the
 * result still has not come, fails at once with the messages on screen (what the server said).
 */
async function jobResult(page, expected, progressTitle) {
  const deadline = Date.now() + jobTimeoutMs;
  const said = new Set();
  let endedAt;
  for (;;) {
    if (await expected.isVisible()) {
      return;
    }
    // Information toasts hide themselves after a while: note each one while it is up.
    for (const text of await page.locator(".notifications-toasts .notification-toast").allInnerTexts()) {
      said.add(text.replace(/\s+/g, " ").trim());
    }
    const running = await toast(page, progressTitle).isVisible();
    endedAt = running ? undefined : (endedAt ?? Date.now());
    if (Date.now() > deadline || (endedAt !== undefined && Date.now() - endedAt > 10_000)) {
      const what = running ? "the job did not end in time" : "the job ended without its result";
      throw new Error(`${what}; messages shown: ${[...said].join(" | ") || "none"}`);
    }
    await page.waitForTimeout(500);
  }
}

/** The status-bar item of the extension, "⚡ …". */
function energyItem(page) {
  return page.locator(".statusbar-item", { hasText: "⚡" }).first();
}

async function optimizeScenario(page, workspace, file) {
  const original = readFileSync(path.join(workspace, file), "utf8");
  const key = process.env.WATTSON_E2E_API_KEY;
  if (key !== undefined && key !== "") {
    await setApiKeyStep(page, key);
  }
  await codeLensStep(page, workspace, file);
  await step("the status bar shows no energy before any measurement", async () => {
    const text = (await energyItem(page).innerText({ timeout: uiTimeoutMs })).trim();
    if (/\d/.test(text)) {
      throw new Error(`the status bar already shows a measurement: ${text}`);
    }
  });
  await step('"Wattson: Optimize for Energy" shows a progress notification', async () => {
    await runPalette(page, "Wattson: Optimize for Energy");
    const progress = toast(page, "Wattson: optimizing");
    await progress.waitFor({ timeout: uiTimeoutMs });
    await progress.getByRole("button", { name: "Cancel" }).waitFor({ timeout: uiTimeoutMs });
    // A stage reported by the server's pipeline, not only the client's title.
    await toast(page, /profiling the original|measuring|trial 1\/1/).waitFor({ timeout: jobTimeoutMs });
    await screenshot(page, "progress");
  });
  const panel = page.locator(".part.panel");
  const applyButton = panel.locator(".monaco-button", { hasText: /^Apply$/ }).first();
  await step("the result opens in the refactor preview, labelled with the measured saving", async () => {
    await jobResult(page, panel.locator(".action-label", { hasText: "Refactor Preview" }).first(), "Wattson: optimizing");
    await applyButton.waitFor({ timeout: uiTimeoutMs });
    // The file and at least one change under it.
    await panel.locator(".monaco-list-row", { hasText: path.basename(file) }).first().waitFor({ timeout: uiTimeoutMs });
    if ((await panel.locator(".monaco-list-row").count()) < 2) {
      throw new Error("the refactor preview lists no change");
    }
    // Each change carries the change annotation, the measured saving, as its hover text (the
    // preview shows labels as a group only when an edit has several kinds of change).
    const changes = panel.locator(".monaco-list-row [title]");
    const titles = await changes.evaluateAll((elements) => elements.map((element) => element.getAttribute("title")));
    if (titles.length === 0 || !titles.every((title) => /^Wattson: −\d[\d.]* % energy/.test(title ?? ""))) {
      throw new Error(`the changes are not labelled with the measured saving: ${JSON.stringify(titles)}`);
    }
    console.log(`     change label: ${titles[0].split(" - ")[0]}`);
    await panel.locator(".monaco-list-row").nth(1).hover({ position: { x: 200, y: 8 } });
    await page.waitForTimeout(1500); // the hover appears after a delay
    await screenshot(page, "refactor-preview");
    // Away from the row, so the hover closes before the next screenshot.
    await page.mouse.move(700, 300);
    await page.waitForTimeout(500);
  });
  await step("the report opens in the Markdown preview", async () => {
    await page.locator(".tabs-container .tab", { hasText: "report.md" }).first().waitFor({ timeout: uiTimeoutMs });
    // The preview is a webview: an iframe holding the rendered Markdown in another iframe.
    const rendered = page.frameLocator("iframe.webview.ready").frameLocator("iframe#active-frame");
    await rendered.locator("h1", { hasText: "Wattson optimize" }).first().waitFor({ timeout: uiTimeoutMs });
    await rendered.locator("li", { hasText: "Outcome: improved" }).first().waitFor({ timeout: uiTimeoutMs });
    await rendered.locator("table").first().waitFor({ timeout: uiTimeoutMs });
    await screenshot(page, "report");
  });
  const expectedFile = process.env.WATTSON_E2E_EXPECTED_FILE;
  const expected = expectedFile ? readFileSync(expectedFile, "utf8") : undefined;
  await step(`applying and saving writes ${expected ? "the accepted candidate" : "a change"} to disk`, async () => {
    // Edits that need confirmation start unticked in the preview: tick the file, then apply.
    const fileRow = panel.locator(".monaco-list-row", { hasText: path.basename(file) }).first();
    await fileRow.locator("input[type=checkbox], .monaco-checkbox, .monaco-custom-toggle").first().click();
    await screenshot(page, "refactor-preview-ticked");
    await applyButton.click();
    await page.locator(".tabs-container .tab", { hasText: path.basename(file) }).first().click();
    await page.locator(".monaco-editor .view-lines").first().click();
    await page.keyboard.press("Control+S");
    const deadline = Date.now() + uiTimeoutMs;
    while (readFileSync(path.join(workspace, file), "utf8") === original) {
      if (Date.now() > deadline) {
        throw new Error(`${file} did not change`);
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    if (expected !== undefined) {
      const saved = readFileSync(path.join(workspace, file), "utf8").trimEnd().split("\n");
      const wanted = expected.trimEnd().split("\n");
      const line = saved.findIndex((text, i) => text !== wanted[i]);
      if (line >= 0 || saved.length !== wanted.length) {
        const at = line >= 0 ? line : Math.min(saved.length, wanted.length);
        throw new Error(`${file} on disk differs from the accepted candidate at line ${at + 1}: ${JSON.stringify(saved[at])}`);
      }
    }
  });
  await step("the code lens stays above the optimized kernel", async () => {
    await showFirstKernel(page, workspace, file);
    await page.locator(".codelens-decoration", { hasText: "Optimize" }).first().waitFor({ timeout: uiTimeoutMs });
    await screenshot(page, "applied-code-lens");
  });
  await step('"Wattson: Profile Energy" on the optimized file puts its energy in the status bar', async () => {
    await runPalette(page, "Wattson: Profile Energy");
    const energy = page.locator(".statusbar-item", { hasText: /⚡ \d[\d.]* J/ }).first();
    await energy.waitFor({ timeout: jobTimeoutMs });
    console.log(`     status bar: ${(await energy.innerText()).trim()}`);
    await page.waitForTimeout(500); // let the result's toast finish sliding in
    await screenshot(page, "status-bar-energy");
  });
}

async function main() {
  if (!["optimize", "profile", "server-missing"].includes(scenario)) {
    fail(`unknown scenario ${scenario}: use optimize, profile or server-missing.`);
  }
  for (const [what, where] of [["code-server", codeServer], ["Chromium", chromiumPath]]) {
    if (!existsSync(where)) {
      fail(`${what} is not at ${where}: see docs/vscode.md for how to install it.`);
    }
  }
  const vsix = newestVsix();
  const command = serverCommand();
  const scratch = mkdtempSync(path.join(tmpdir(), "wattson-e2e-"));
  const userData = path.join(scratch, "user-data");
  const extensions = path.join(scratch, "extensions");
  const workspace = path.join(scratch, "workspace");
  cpSync(process.env.WATTSON_E2E_WORKSPACE ?? path.join(here, "fixture"), workspace, { recursive: true });
  const file = process.env.WATTSON_E2E_FILE ?? firstCudaFile(workspace);
  if (file === undefined) {
    fail("the workspace has no .cu file: set WATTSON_E2E_FILE.");
  }
  mkdirSync(artifacts, { recursive: true });
  // code-server is a remote window: settings of machine scope (wattson.server.*) are read from the
  // Machine (remote) settings, not the User ones, as over Remote-SSH. Both get the same file.
  const settings = JSON.stringify(
      {
        "security.workspace.trust.enabled": false,
        "workbench.startupEditor": "none",
        "workbench.tips.enabled": false,
        "workbench.welcomePage.walkthroughs.openOnInstall": false,
        "telemetry.telemetryLevel": "off",
        "extensions.autoUpdate": false,
        "extensions.autoCheckUpdates": false,
        "chat.disableAIFeatures": true,
        "workbench.secondarySideBar.defaultVisibility": "hidden",
        "editor.codeLens": true,
        "wattson.server.command": command,
      },
      null,
      2,
    );
  for (const scope of ["User", "Machine"]) {
    mkdirSync(path.join(userData, scope), { recursive: true });
    writeFileSync(path.join(userData, scope, "settings.json"), settings);
  }
  const env = { ...process.env, PATH: `${codeServerNodeDir}${path.delimiter}${process.env.PATH}` };
  const common = ["--user-data-dir", userData, "--extensions-dir", extensions, "--config", path.join(scratch, "config.yaml")];

  console.log(`scenario ${scenario}; vsix ${path.relative(process.cwd(), vsix)}; workspace ${workspace}; file ${file}`);
  await step("the .vsix installs into code-server", async () => {
    const install = spawnSync(codeServer, [...common, "--install-extension", vsix], { env, encoding: "utf8" });
    if (install.status !== 0 || !/successfully installed/.test(install.stdout)) {
      throw new Error(`code-server --install-extension failed: ${install.stdout}${install.stderr}`);
    }
  });

  const port = await freePort();
  const serverLog = [];
  const server = spawn(
    codeServer,
    [...common, "--auth", "none", "--bind-addr", `127.0.0.1:${port}`, "--disable-telemetry", "--disable-update-check", "--disable-workspace-trust", workspace],
    { env, detached: true, stdio: ["ignore", "pipe", "pipe"] },
  );
  server.stdout.on("data", (chunk) => serverLog.push(String(chunk)));
  server.stderr.on("data", (chunk) => serverLog.push(String(chunk)));
  let browser;
  try {
    await waitForHttp(`http://127.0.0.1:${port}/healthz`, 60_000);
    browser = await chromium.launch({
      executablePath: chromiumPath,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    await step("VS Code opens the workspace", async () => {
      await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`);
      await page.locator(".monaco-workbench").waitFor({ timeout: uiTimeoutMs });
    });
    await step(`${file} opens as CUDA and activates the extension`, async () => {
      await openFile(page, file);
      await page.locator(".statusbar-item", { hasText: "CUDA C++" }).first().waitFor({ timeout: uiTimeoutMs });
      await screenshot(page, "opened");
    });
    if (scenario === "server-missing") {
      await serverMissingScenario(page);
    } else if (scenario === "profile") {
      await profileScenario(page, file);
    } else {
      await optimizeScenario(page, workspace, file);
    }
  } catch (error) {
    if (browser !== undefined) {
      for (const context of browser.contexts()) {
        for (const page of context.pages()) {
          await page.screenshot({ path: path.join(artifacts, "failure.png") }).catch(() => undefined);
        }
      }
    }
    writeFileSync(path.join(artifacts, "code-server.log"), serverLog.join(""));
    console.log(`     code-server log and failure.png in ${artifacts}`);
    if (!(error instanceof Error) || !results.some((result) => !result.ok)) {
      results.push({ name: "unexpected error", ok: false });
      console.log(`FAIL ${error instanceof Error ? error.stack : error}`);
    }
  } finally {
    await browser?.close();
    try {
      process.kill(-server.pid, "SIGTERM");
    } catch {
      // already gone
    }
    if (options.keep) {
      console.log(`kept ${scratch}`);
    } else {
      rmSync(scratch, { recursive: true, force: true });
    }
  }
  const passed = results.filter((result) => result.ok).length;
  const failed = results.length - passed;
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

await main();
