/** Where a command writes: process.stdout/stderr, or a buffer in tests. */
export interface Output {
  write(text: string): unknown;
}
