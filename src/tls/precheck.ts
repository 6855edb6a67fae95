import { Resolver } from 'node:dns/promises';
import { request } from 'node:http';

/**
 * Before asking a CA (and spending its rate limit): every host name must
 * resolve only to nodes that run the proxy, and port 80 on each of those
 * must route an ACME challenge through the proxy to the agent. Checked from
 * where cluster-cli runs, i.e. from outside the hosts, with a throwaway token
 * the agent answers from the database like a real one.
 */
export interface PrecheckInput {
  readonly domains: readonly string[];
  /** Address → node name of every node that runs the proxy. */
  readonly proxyNodes: ReadonlyMap<string, string>;
  readonly token: string;
  readonly keyAuthorization: string;
  /** `host[:port]` of a DNS server to ask instead of the system's resolver. */
  readonly dnsServer?: string;
  readonly timeoutMs?: number;
}

export async function precheckDomains(i: PrecheckInput): Promise<string[]> {
  const problems: string[] = [];
  const resolver = new Resolver({ timeout: i.timeoutMs ?? 5000, tries: 2 });
  if (i.dnsServer) resolver.setServers([i.dnsServer]);
  for (const domain of i.domains) {
    let addrs: string[];
    try {
      addrs = await resolver.resolve4(domain);
    } catch (err) {
      const code = (err as { code?: string }).code ?? String(err);
      problems.push(
        `${domain} does not resolve (${code}): point its A record at a proxy node (${[...i.proxyNodes.keys()].join(', ')})`,
      );
      continue;
    }
    const stray = addrs.filter((a) => !i.proxyNodes.has(a));
    if (stray.length) {
      problems.push(
        `${domain} resolves to ${stray.join(', ')}, which runs no proxy of this cluster (proxy nodes: ${[...i.proxyNodes.keys()].join(', ')})`,
      );
    }
    for (const a of addrs.filter((x) => i.proxyNodes.has(x))) {
      const got = await fetchChallenge(a, domain, i.token, i.timeoutMs ?? 5000);
      if (got !== i.keyAuthorization) {
        problems.push(
          `http://${domain}/.well-known/acme-challenge/ on ${a} (${i.proxyNodes.get(a)}) ${got === undefined ? 'is not reachable' : `answered ${JSON.stringify(got.slice(0, 60))}`}: port 80 must reach the proxy, and the proxy the agent`,
        );
      }
    }
  }
  return problems;
}

function fetchChallenge(
  address: string,
  host: string,
  token: string,
  timeoutMs: number,
): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = request(
      {
        host: address,
        port: 80,
        path: `/.well-known/acme-challenge/${token}`,
        headers: { host },
        timeout: timeoutMs,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          if (body.length < 4096) body += d;
        });
        res.on('end', () =>
          resolve(res.statusCode === 200 ? body.trim() : `HTTP ${res.statusCode}`),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(undefined));
    req.end();
  });
}
