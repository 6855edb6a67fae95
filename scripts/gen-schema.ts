// Regenerates schema/cluster.schema.json from the zod schema: `npm run schema`.
// test/unit/json-schema.test.ts fails when the committed file is stale.
import { writeFileSync } from 'node:fs';
import { configJsonSchema } from '../src/config/json-schema.js';

writeFileSync(
  new URL('../schema/cluster.schema.json', import.meta.url),
  `${JSON.stringify(configJsonSchema(), null, 2)}\n`,
);
console.log('wrote schema/cluster.schema.json');
