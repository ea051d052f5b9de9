/** Loaded with `node --require`: makes `require("vscode")` return the mock. */
import Module = require("node:module");

type Resolve = (request: string, ...rest: unknown[]) => string;
const moduleInternals = Module as unknown as { _resolveFilename: Resolve };
const resolveFilename = moduleInternals._resolveFilename;
const mockPath = require.resolve("./vscode");

moduleInternals._resolveFilename = function (this: unknown, request: string, ...rest: unknown[]): string {
  return request === "vscode" ? mockPath : resolveFilename.call(this, request, ...rest);
};
