/** Which documents are Wattson's: the language ids and file suffixes of docs/lsp.md. */
import type { TextDocument } from "vscode";

export const CUDA_LANGUAGE_IDS: readonly string[] = ["cuda-cpp", "cuda", "hip"];
export const CUDA_SUFFIXES: readonly string[] = [".cu", ".cuh", ".hip"];

export const DOCUMENT_SELECTOR: { scheme: string; language?: string; pattern?: string }[] = [
  ...CUDA_LANGUAGE_IDS.map((language) => ({ scheme: "file", language })),
  { scheme: "file", pattern: "**/*.{cu,cuh,hip}" },
];

export function isCudaDocument(document: Pick<TextDocument, "languageId" | "fileName">): boolean {
  const name = document.fileName.toLowerCase();
  return CUDA_LANGUAGE_IDS.includes(document.languageId) || CUDA_SUFFIXES.some((suffix) => name.endsWith(suffix));
}
