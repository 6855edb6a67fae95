import { defaultCtx } from './context.js';
import { main } from './main.js';

// The only place that ends the process.
const code = await main(process.argv.slice(2), defaultCtx());
process.exitCode = code;
