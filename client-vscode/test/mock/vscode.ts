/**
 * A small stand-in for the `vscode` module: the editor is the boundary of unit tests. It records
 * what the extension shows and answers prompts from queues the tests fill.
 */
/* eslint-disable @typescript-eslint/no-explicit-any */

export interface Shown {
  kind: "error" | "warning" | "info";
  message: string;
  buttons: string[];
}

export const record = {
  messages: [] as Shown[],
  commands: [] as { id: string; args: unknown[] }[],
  progress: [] as { title: string; reports: { message?: string; increment?: number }[] }[],
  inputBoxes: [] as any[],
  quickPicks: [] as { items: any[]; options: any }[],
  log: [] as string[],
  outputShown: 0,
};

/** Answers to the next prompts, taken in order; an empty queue answers undefined (dismissed). */
export const answers = {
  messages: [] as (string | undefined)[],
  inputBoxes: [] as (string | undefined)[],
  quickPicks: [] as (string | undefined)[],
};

export const configuration: Record<string, unknown> = {};
export const registeredCommands = new Map<string, (...args: unknown[]) => unknown>();
/** Cancels the notification currently shown by withProgress (the user clicking Cancel). */
export const progressControl = { cancel: (): void => undefined };
export let activeEditor: any;

export function setActiveEditor(editor: any): void {
  activeEditor = editor;
}

export function reset(): void {
  record.messages.length = 0;
  record.commands.length = 0;
  record.progress.length = 0;
  record.inputBoxes.length = 0;
  record.quickPicks.length = 0;
  record.log.length = 0;
  record.outputShown = 0;
  answers.messages.length = 0;
  answers.inputBoxes.length = 0;
  answers.quickPicks.length = 0;
  for (const key of Object.keys(configuration)) {
    delete configuration[key];
  }
  registeredCommands.clear();
  activeEditor = undefined;
}

export class Disposable {
  constructor(private readonly onDispose: () => void = () => undefined) {}
  dispose(): void {
    this.onDispose();
  }
}

export class EventEmitter<T> {
  private listeners: ((value: T) => void)[] = [];
  event = (listener: (value: T) => void): Disposable => {
    this.listeners.push(listener);
    return new Disposable(() => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    });
  };
  fire(value: T): void {
    for (const listener of [...this.listeners]) {
      listener(value);
    }
  }
  dispose(): void {
    this.listeners = [];
  }
}

export class CancellationTokenSource {
  private readonly emitter = new EventEmitter<void>();
  readonly token = {
    isCancellationRequested: false,
    onCancellationRequested: this.emitter.event,
  };
  cancel(): void {
    if (!this.token.isCancellationRequested) {
      this.token.isCancellationRequested = true;
      this.emitter.fire(undefined);
    }
  }
  dispose(): void {
    this.emitter.dispose();
  }
}

export class Uri {
  private constructor(
    readonly scheme: string,
    readonly authority: string,
    readonly path: string,
  ) {}

  static parse(value: string): Uri {
    const url = new URL(value);
    return new Uri(url.protocol.replace(/:$/, ""), url.host, decodeURIComponent(url.pathname));
  }

  static file(fsPath: string): Uri {
    return new Uri("file", "", fsPath);
  }

  get fsPath(): string {
    return this.path;
  }

  toString(): string {
    return `${this.scheme}://${this.authority}${encodeURI(this.path)}`;
  }
}

export enum ProgressLocation {
  SourceControl = 1,
  Window = 10,
  Notification = 15,
}

export enum StatusBarAlignment {
  Left = 1,
  Right = 2,
}

function message(kind: Shown["kind"]) {
  return (text: string, ...buttons: any[]): Promise<string | undefined> => {
    record.messages.push({ kind, message: text, buttons: buttons.filter((b) => typeof b === "string") });
    return Promise.resolve(answers.messages.shift());
  };
}

export class FakeStatusBarItem {
  text = "";
  tooltip: unknown = undefined;
  name = "";
  command: unknown = undefined;
  visible = false;
  constructor(readonly id: string) {}
  show(): void {
    this.visible = true;
  }
  hide(): void {
    this.visible = false;
  }
  dispose(): void {
    this.visible = false;
  }
}

export const statusBarItems: FakeStatusBarItem[] = [];

function outputChannelLogger(name: string): any {
  const line = (level: string) => (text: string) => record.log.push(`[${level}] ${text}`);
  return {
    name,
    append: (text: string) => record.log.push(text),
    appendLine: (text: string) => record.log.push(text),
    trace: line("trace"),
    debug: line("debug"),
    info: line("info"),
    warn: line("warning"),
    error: line("error"),
    show: () => {
      record.outputShown++;
    },
    dispose: () => undefined,
  };
}

export const window = {
  showErrorMessage: message("error"),
  showWarningMessage: message("warning"),
  showInformationMessage: message("info"),
  showInputBox: (options: any): Promise<string | undefined> => {
    record.inputBoxes.push(options);
    return Promise.resolve(answers.inputBoxes.shift());
  },
  showQuickPick: (items: any[], options: any): Promise<any> => {
    record.quickPicks.push({ items, options });
    const label = answers.quickPicks.shift();
    return Promise.resolve(items.find((item) => item.label === label));
  },
  withProgress: async (options: any, task: (progress: any, token: any) => Promise<any>): Promise<any> => {
    const entry = { title: options.title as string, reports: [] as { message?: string; increment?: number }[] };
    record.progress.push(entry);
    const source = new CancellationTokenSource();
    progressControl.cancel = () => source.cancel();
    return task({ report: (value: any) => entry.reports.push(value) }, source.token);
  },
  createOutputChannel: (name: string) => outputChannelLogger(name),
  createStatusBarItem: (id: string) => {
    const item = new FakeStatusBarItem(id);
    statusBarItems.push(item);
    return item;
  },
  get activeTextEditor(): any {
    return activeEditor;
  },
  onDidChangeActiveTextEditor: () => new Disposable(),
};

export const workspace = {
  workspaceFolders: undefined as any,
  getConfiguration: (section: string) => ({
    get: (key: string, fallback?: unknown) => {
      const value = configuration[`${section}.${key}`];
      return value === undefined ? fallback : value;
    },
  }),
  onDidChangeConfiguration: () => new Disposable(),
};

export const commands = {
  registerCommand: (id: string, handler: (...args: unknown[]) => unknown) => {
    registeredCommands.set(id, handler);
    return new Disposable(() => registeredCommands.delete(id));
  },
  executeCommand: (id: string, ...args: unknown[]): Promise<unknown> => {
    record.commands.push({ id, args });
    const handler = registeredCommands.get(id);
    return Promise.resolve(handler === undefined ? undefined : handler(...args));
  },
};

// Classes vscode-languageclient extends when it loads; the unit tests never build these values.
export class CallHierarchyItem {}
export class CodeLens {}
export class CompletionItem {}
export class DocumentLink {}
export class InlayHint {}
export class SymbolInformation {}
export class TypeHierarchyItem {}
export class CodeAction {}
export class Diagnostic {}
export class CancellationError extends Error {}
