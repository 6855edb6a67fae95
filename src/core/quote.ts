const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** POSIX shell quoting of one word: safe words stay bare, others go in single quotes. */
export function quoteArg(word: string): string {
  if (word === '') return "''";
  if (SAFE.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Join argv into one command string for a remote shell (ssh exec takes a string). */
export function quoteArgv(argv: readonly string[]): string {
  return argv.map(quoteArg).join(' ');
}
