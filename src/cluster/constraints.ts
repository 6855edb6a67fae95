/** A node as placement constraints see it. */
export interface ConstraintNode {
  readonly id: string;
  /** Its hostname (node.hostname). */
  readonly name: string;
  readonly role: 'manager' | 'worker';
  readonly labels: Readonly<Record<string, string>>;
}

/**
 * Does a node meet one Swarm placement constraint? undefined when the
 * constraint asks about something these facts do not hold (engine labels,
 * platform): the caller decides what that means.
 */
export function meetsConstraint(node: ConstraintNode, constraint: string): boolean | undefined {
  const m = /^\s*([\w.-]+)\s*(==|!=)\s*(.*?)\s*$/.exec(constraint);
  if (!m) return undefined;
  const [, key = '', op, value = ''] = m;
  let actual: string | undefined;
  if (key === 'node.id') actual = node.id;
  else if (key === 'node.hostname') actual = node.name;
  else if (key === 'node.role') actual = node.role;
  else if (key.startsWith('node.labels.')) actual = node.labels[key.slice('node.labels.'.length)];
  else return undefined;
  const equal = actual !== undefined && actual === value;
  return op === '==' ? equal : !equal;
}

/** Every constraint met (unknown ones count as met). */
export function meetsAll(node: ConstraintNode, constraints: readonly string[]): boolean {
  return constraints.every((c) => meetsConstraint(node, c) !== false);
}
