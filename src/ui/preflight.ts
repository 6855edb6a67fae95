import type { PreflightReport } from '../cluster/preflight.js';
import { formatTable } from './table.js';

/** The preflight checks as a table: check, found, wanted, result. */
export function formatPreflight(report: PreflightReport): string {
  return formatTable(
    ['check', 'found', 'wanted', 'result'],
    report.rows.map((r) => [r.check, r.value, r.want, r.status.toUpperCase()]),
  );
}
