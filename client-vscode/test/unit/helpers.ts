/** Shared fixtures for the unit tests: a fake editor over real text, and a SecretStorage. */
import * as vscode from "../mock/vscode";

export function fakeEditor(text: string, fileName: string, cursorOffset = 0, languageId = "cuda-cpp") {
  return {
    document: {
      uri: vscode.Uri.file(fileName),
      fileName,
      languageId,
      version: 7,
      getText: () => text,
      offsetAt: (position: { offset: number }) => position.offset,
    },
    selection: { active: { offset: cursorOffset } },
  };
}

export class MemorySecrets {
  readonly values = new Map<string, string>();
  readonly onDidChange = new vscode.EventEmitter<{ key: string }>().event;
  get(key: string): Promise<string | undefined> {
    return Promise.resolve(this.values.get(key));
  }
  store(key: string, value: string): Promise<void> {
    this.values.set(key, value);
    return Promise.resolve();
  }
  delete(key: string): Promise<void> {
    this.values.delete(key);
    return Promise.resolve();
  }
}
