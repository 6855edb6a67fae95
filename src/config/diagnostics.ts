import type { z } from 'zod';

export interface Diagnostic {
  readonly path: string;
  readonly message: string;
}

/** `hosts[0].port` style path, as a user would write it in cluster.yaml. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out || '(top level)';
}

export function fromZodIssues(issues: readonly z.core.$ZodIssue[]): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys)
        out.push({ path: formatPath([...issue.path, key]), message: 'unknown key' });
      continue;
    }
    if (issue.code === 'invalid_key') {
      out.push({
        path: formatPath(issue.path),
        message: issue.issues[0]?.message ?? issue.message,
      });
      continue;
    }
    if (issue.code === 'invalid_type' && issue.input === undefined) {
      out.push({ path: formatPath(issue.path), message: 'is required' });
      continue;
    }
    out.push({ path: formatPath(issue.path), message: issue.message });
  }
  return out;
}

export function formatDiagnostics(diags: readonly Diagnostic[]): string {
  return diags.map((d) => `${d.path}: ${d.message}`).join('\n');
}
