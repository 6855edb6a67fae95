import { daemonTime } from '../cluster/converge.js';
import { liveSecretsOfStack } from '../cluster/plan-init.js';
import { probeCluster } from '../cluster/probe.js';
import { oldestVersion } from '../cluster/versions.js';
import { configCreate, stackDeploy } from '../docker/commands.js';
import { buildStackModel, type LiveSecrets } from '../stack/model.js';
import { renderStack } from '../stack/render.js';
import type { ProgressMode } from '../ui/progress.js';
import type { ClusterHandle } from './cluster.js';
import type { Ctx } from './context.js';
import { converge } from './converge-progress.js';

/**
 * Re-render the proxy with other live secrets (a certificate, the admins'
 * file) and update just that service when it differs from what runs; wait
 * until every replica runs it. Returns whether the proxy was updated.
 */
export async function updateProxyLive(
  ctx: Ctx,
  h: ClusterHandle,
  patch: LiveSecrets,
  o: { mode: ProgressMode; timeoutS?: number },
): Promise<boolean> {
  const exec = h.manager.session.exec;
  const facts = await probeCluster(exec, h.config.name);
  const live = { ...liveSecretsOfStack(h.config.name, facts), ...patch };
  const engine = oldestVersion(facts.nodes.map((n) => n.engine));
  const rendered = renderStack(buildStackModel(h.config, live), engine ? { engine } : {});
  const name = `${h.config.name}_proxy`;
  const running = facts.services.find((s) => s.name === name);
  const runningLive = liveSecretsOfStack(h.config.name, facts);
  if (
    running?.revision === rendered.revisions.proxy &&
    JSON.stringify(runningLive) === JSON.stringify(rendered.live)
  ) {
    return false;
  }
  for (const c of rendered.configs) {
    if (!facts.configs.includes(c.name)) await exec.run(configCreate(c.name, c.content));
  }
  const api = h.manager.session.docker();
  const since = await daemonTime(api).catch(() => undefined);
  await exec.run(
    stackDeploy(
      { name: h.config.name, resolveImage: h.config.deploy.resolveImage, prune: false },
      rendered.yamlFor(['proxy']),
    ),
  );
  await converge(api, ctx.stdout, o.mode, {
    stack: h.config.name,
    services: [name],
    timeoutMs: (o.timeoutS ?? h.config.deploy.timeout) * 1000,
    ...(since ? { since } : {}),
  });
  return true;
}
