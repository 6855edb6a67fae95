import type { StackModel } from '../model.js';
import { caddy } from './caddy.js';
import { traefik } from './traefik.js';
import type { ProxyProvider } from './types.js';

export { CADDYFILE_PATH, caddy, renderCaddyfile } from './caddy.js';
export {
  TRAEFIK_CONFIG_PATH,
  TRAEFIK_DYNAMIC_PATH,
  traefik,
  traefikAppName,
  traefikDynamicConfig,
  traefikDynamicYaml,
  traefikStaticConfig,
  traefikStaticYaml,
} from './traefik.js';
export type * from './types.js';
export { webPorts } from './types.js';

export const PROXY_PROVIDERS: Readonly<Record<StackModel['proxy']['provider'], ProxyProvider>> = {
  traefik,
  caddy,
};

export function proxyProvider(id: StackModel['proxy']['provider']): ProxyProvider {
  return PROXY_PROVIDERS[id];
}
