import { z } from 'zod';
import { Config } from './schema.js';

/** JSON Schema for cluster.yaml (what a user may write: defaults optional), for editors. */
export function configJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(Config, { io: 'input', target: 'draft-2020-12' }) as Record<
    string,
    unknown
  >;
  return {
    ...schema,
    $id: 'https://unpkg.com/cluster-cli/schema/cluster.schema.json',
    title: 'cluster-cli cluster.yaml',
    description:
      'Declarative description of a Docker Swarm cluster managed by cluster-cli. Never put secrets here.',
  };
}
