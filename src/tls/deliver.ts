import { apiRequest, type DockerApi } from '../core/api.js';
import { type Secret, secret } from '../core/secret.js';
import { LIVE_SECRET_FILES } from '../stack/model.js';
import type { StoredCertificate } from './store.js';

/**
 * A certificate becomes two Docker secrets (immutable, so named by the
 * certificate's fingerprint) that every proxy replica mounts as tls.crt and
 * tls.key. Swapping them is one service update: Swarm rolls it one replica
 * at a time, so HTTPS keeps answering on the others meanwhile.
 */
export const TLS_LABEL = 'io.cluster-cli.tls';

export interface CertSecrets {
  readonly tlsCert: string;
  readonly tlsKey: string;
}

export function certSecretNames(stack: string, fingerprint: string): CertSecrets {
  const id = fingerprint.replaceAll(':', '').toLowerCase().slice(0, 16);
  return { tlsCert: `${stack}_tls_crt_${id}`, tlsKey: `${stack}_tls_key_${id}` };
}

interface SecretJson {
  ID: string;
  Spec: { Name: string; Labels?: Record<string, string> };
}

/** The Docker Engine API call that creates a secret; its content only ever in the body. */
export function secretCreateRequest(name: string, content: Secret, labels: Record<string, string>) {
  return apiRequest('POST', '/secrets/create', {
    body: {
      Name: name,
      Labels: { 'io.cluster-cli.managed': 'true', ...labels },
      Data: secret(Buffer.from(content.reveal()).toString('base64')),
    },
  });
}

async function secretsNamed(api: DockerApi, names: readonly string[]): Promise<SecretJson[]> {
  const all = await api.request<SecretJson[]>(
    apiRequest('GET', '/secrets', {
      query: { filters: JSON.stringify({ name: [...names] }) },
      readOnly: true,
    }),
  );
  // The name filter matches prefixes: keep exact names only.
  return all.filter((s) => names.includes(s.Spec.Name));
}

/** Create the certificate's two secrets unless they exist; returns their names. */
export async function ensureCertSecrets(
  api: DockerApi,
  stack: string,
  cert: StoredCertificate,
): Promise<CertSecrets> {
  const names = certSecretNames(stack, cert.fingerprint);
  const have = await secretsNamed(api, [names.tlsCert, names.tlsKey]);
  const labels = { [TLS_LABEL]: stack, 'io.cluster-cli.not-after': cert.notAfter };
  if (!have.some((s) => s.Spec.Name === names.tlsCert)) {
    await api.request(secretCreateRequest(names.tlsCert, secret(cert.certificate), labels));
  }
  if (!have.some((s) => s.Spec.Name === names.tlsKey)) {
    await api.request(secretCreateRequest(names.tlsKey, secret(cert.key), labels));
  }
  return names;
}

interface ServiceJson {
  ID: string;
  Version: { Index: number };
  Spec: {
    TaskTemplate: {
      ContainerSpec: {
        Secrets?: {
          SecretID: string;
          SecretName: string;
          File: { Name: string; UID: string; GID: string; Mode: number };
        }[];
      };
    };
  } & Record<string, unknown>;
}

/**
 * Point the running proxy at other certificate secrets. `not-serving`: the
 * proxy mounts no certificate yet (HTTP only until `ssl enable` renders it
 * with one), so there is nothing to swap.
 */
export async function swapProxyCertificate(
  api: DockerApi,
  stack: string,
  names: CertSecrets,
): Promise<'swapped' | 'already' | 'not-serving'> {
  const svc = await api.request<ServiceJson>(
    apiRequest('GET', `/services/${stack}_proxy`, { readOnly: true }),
  );
  const mounted = svc.Spec.TaskTemplate.ContainerSpec.Secrets ?? [];
  const crt = mounted.find((m) => m.File.Name === LIVE_SECRET_FILES.tlsCert);
  const key = mounted.find((m) => m.File.Name === LIVE_SECRET_FILES.tlsKey);
  if (!crt || !key) return 'not-serving';
  if (crt.SecretName === names.tlsCert && key.SecretName === names.tlsKey) return 'already';
  const ids = await secretsNamed(api, [names.tlsCert, names.tlsKey]);
  const idOf = (n: string) => {
    const s = ids.find((x) => x.Spec.Name === n);
    if (!s) throw new Error(`secret ${n} does not exist`);
    return s.ID;
  };
  const secrets = mounted.map((m) =>
    m === crt
      ? { ...m, SecretName: names.tlsCert, SecretID: idOf(names.tlsCert) }
      : m === key
        ? { ...m, SecretName: names.tlsKey, SecretID: idOf(names.tlsKey) }
        : m,
  );
  const spec = structuredClone(svc.Spec);
  spec.TaskTemplate.ContainerSpec.Secrets = secrets;
  await api.request(
    apiRequest('POST', `/services/${svc.ID}/update`, {
      query: { version: svc.Version.Index },
      body: spec,
    }),
  );
  return 'swapped';
}

/**
 * Remove the stack's certificate secrets other than `keep` (the current and
 * the previous pair, which a rollback may need). Swarm refuses to remove a
 * secret a service still uses: such an error just leaves it.
 */
export async function pruneCertSecrets(
  api: DockerApi,
  stack: string,
  keep: readonly string[],
): Promise<string[]> {
  const all = await api.request<SecretJson[]>(
    apiRequest('GET', '/secrets', {
      query: { filters: JSON.stringify({ label: [`${TLS_LABEL}=${stack}`] }) },
      readOnly: true,
    }),
  );
  const removed: string[] = [];
  for (const s of all) {
    if (keep.includes(s.Spec.Name)) continue;
    try {
      await api.request(apiRequest('DELETE', `/secrets/${s.ID}`));
      removed.push(s.Spec.Name);
    } catch {
      // Still in use (a task of the previous revision): the next prune takes it.
    }
  }
  return removed;
}
