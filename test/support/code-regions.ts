// Code examples of the documentation live in compiled files, as regions (`// #region name` ...
// `// #endregion name`); the docs' code blocks must equal a region word for word.
function dedent(lines: string[]): string {
  const indent = Math.min(
    ...lines.filter((line) => line.trim() !== '').map((line) => line.length - line.trimStart().length),
  );
  return lines
    .map((line) => line.slice(indent))
    .join('\n')
    .trim();
}

export function regions(source: string): Map<string, string> {
  const found = new Map<string, string>();
  const pattern = /^\s*\/\/ #region (\S+)\n([\s\S]*?)^\s*\/\/ #endregion \1$/gm;
  for (const match of source.matchAll(pattern))
    found.set(match[1], dedent(match[2].replace(/\n$/, '').split('\n')));
  return found;
}
