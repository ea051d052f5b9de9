/**
 * Finds the `__global__` kernels defined in a CUDA/HIP source, so "Optimize Kernel for Energy"
 * can take the one under the cursor or offer a list. A light scan, not a parser: comments and
 * string literals are blanked first so that braces and names inside them do not count.
 */

export interface KernelDefinition {
  name: string;
  /** Offset of the `__global__` keyword. */
  start: number;
  /** Offset just past the closing brace of the body. */
  end: number;
}

/** Same length as the input, with comments and literals replaced by spaces (newlines kept). */
export function blankCommentsAndStrings(source: string): string {
  return source.replace(
    /\/\/[^\n]*|\/\*[\s\S]*?(?:\*\/|$)|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'/g,
    (match) => match.replace(/[^\n]/g, " "),
  );
}

// Qualifiers between `__global__` and the name whose parentheses are not the parameter list.
const ATTRIBUTES = /__launch_bounds__\s*\((?:[^()]|\([^()]*\))*\)|__attribute__\s*\(\((?:[^()]|\([^()]*\))*\)\)/g;

export function findKernels(source: string): KernelDefinition[] {
  const code = blankCommentsAndStrings(source);
  const kernels: KernelDefinition[] = [];
  const keyword = /\b__global__\b/g;
  for (let match = keyword.exec(code); match !== null; match = keyword.exec(code)) {
    const start = match.index;
    const headEnd = code.slice(start).search(/[;{]/);
    if (headEnd < 0 || code[start + headEnd] !== "{") {
      continue; // a declaration, not a definition
    }
    const head = code.slice(start + match[0].length, start + headEnd).replace(ATTRIBUTES, (m) => " ".repeat(m.length));
    const name = /([A-Za-z_]\w*)\s*\(/.exec(head)?.[1];
    const bodyStart = start + headEnd;
    const end = matchingBrace(code, bodyStart);
    if (name !== undefined) {
      kernels.push({ name, start, end });
    }
    keyword.lastIndex = end;
  }
  return kernels;
}

function matchingBrace(code: string, open: number): number {
  let depth = 0;
  for (let index = open; index < code.length; index++) {
    if (code[index] === "{") {
      depth++;
    } else if (code[index] === "}") {
      depth--;
      if (depth === 0) {
        return index + 1;
      }
    }
  }
  return code.length; // unbalanced while the user types: the kernel runs to the end
}

export function kernelAt(kernels: readonly KernelDefinition[], offset: number): KernelDefinition | undefined {
  return kernels.find((kernel) => offset >= kernel.start && offset <= kernel.end);
}
