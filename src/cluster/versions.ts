/** `20.10.24+dfsg1` → [20, 10, 24]; undefined when it does not start with a number. */
export function versionParts(v: string): number[] | undefined {
  const m = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(v.trim());
  return m ? [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)] : undefined;
}

export function compareVersions(a: string, b: string): number {
  const pa = versionParts(a) ?? [0, 0, 0];
  const pb = versionParts(b) ?? [0, 0, 0];
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * The oldest of the Docker versions that will handle a stack (every node's
 * engine, the deploying client): what the stack file must suit. Undefined
 * (the most compatible rendering) when none is known.
 */
export function oldestVersion(versions: readonly (string | undefined)[]): string | undefined {
  const known = versions.filter((v): v is string => !!v && versionParts(v) !== undefined);
  return known.sort(compareVersions)[0];
}
