import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { DockerApi } from '../core/api.js';
import { claim, finish } from '../db/claims.js';
import type { Queryable } from '../db/queryable.js';
import type { Obtained, ObtainInput } from '../tls/acme.js';
import { renewIfDue } from '../tls/renew.js';
import { lookupChallenge, readTls, updateTlsStatus } from '../tls/store.js';

/**
 * cluster-cli's agent: one replica on every manager (a global service).
 * - Answers ACME HTTP-01 challenges for every proxy replica, from PostgreSQL:
 *   whichever node the CA's request reaches, the answer is the same.
 * - Takes the CLI's requests (`ssl enable`, `ssl renew`): each is claimed in
 *   PostgreSQL, so exactly one replica runs it.
 * - Checks the certificate once per `checkMs` tick, claimed per tick: one
 *   replica renews, the others see the claim and skip; if that replica's node
 *   dies, the next tick is claimed by a survivor.
 */
export interface AgentDeps {
  /** Connection for claims and renewals. */
  readonly work: Queryable;
  /** Connection for answering challenges (never blocked behind a renewal). */
  readonly serve: Queryable;
  /** A manager's API, to swap renewed certificates into the proxy; absent: store them only. */
  readonly api?: DockerApi;
  readonly owner: string;
  readonly checkMs: number;
  readonly obtain: (input: ObtainInput) => Promise<Obtained>;
  readonly now: () => Date;
  readonly log: (line: string) => void;
}

export const CHALLENGE_PREFIX = '/.well-known/acme-challenge/';
const POLL_MS = 1000;
const LEASE_MS = 10 * 60_000;

export function challengeHandler(db: Queryable) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    try {
      if (path === '/healthz') {
        await db.query('SELECT 1');
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
        return;
      }
      if (req.method === 'GET' && path.startsWith(CHALLENGE_PREFIX)) {
        const token = path.slice(CHALLENGE_PREFIX.length);
        // Tokens are base64url; anything else is not ours to look up.
        const answer = /^[A-Za-z0-9_-]{1,256}$/.test(token)
          ? await lookupChallenge(db, token)
          : undefined;
        if (answer) {
          res.writeHead(200, { 'content-type': 'text/plain' }).end(answer);
          return;
        }
      }
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    } catch {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('database unavailable\n');
    }
  };
}

/** One pass of the agent's loop: the CLI's pending request, then the scheduled tick. */
export async function agentPass(deps: AgentDeps, state: { lastTick?: number }): Promise<void> {
  const { work: db } = deps;
  const request = await readTls(db, 'request');
  const status = await readTls(db, 'status');
  if (request && status?.handled?.id !== request.id) {
    const c = await claim(db, {
      kind: 'tls-request',
      tick: request.id,
      owner: deps.owner,
      leaseMs: LEASE_MS,
    });
    if (c.won) {
      deps.log(`taking request ${request.id}${request.force ? ' (force)' : ''}`);
      try {
        const out = await renewIfDue(
          {
            db,
            api: deps.api,
            owner: deps.owner,
            now: deps.now,
            obtain: deps.obtain,
            log: deps.log,
          },
          { force: request.force },
        );
        const detail =
          out.action === 'renewed'
            ? `renewed (${out.delivery})`
            : out.action === 'fresh'
              ? 'certificate still fresh'
              : 'TLS is not configured';
        await updateTlsStatus(db, { handled: { id: request.id, ok: true, detail } });
        await finish(db, 'tls-request', request.id, deps.owner, 'ok', { detail });
      } catch (err) {
        const detail = err instanceof Error ? err.message : String(err);
        deps.log(`request ${request.id} failed: ${detail}`);
        await updateTlsStatus(db, { handled: { id: request.id, ok: false, detail } });
        await finish(db, 'tls-request', request.id, deps.owner, 'failed', { detail });
      }
    }
  }

  const tick = Math.floor(deps.now().getTime() / deps.checkMs);
  if (tick === state.lastTick) return;
  state.lastTick = tick;
  const tickId = new Date(tick * deps.checkMs).toISOString();
  const c = await claim(db, {
    kind: 'tls-renew',
    tick: tickId,
    owner: deps.owner,
    leaseMs: LEASE_MS,
  });
  if (!c.won) return;
  try {
    const out = await renewIfDue(renewDeps(deps), { force: false });
    await finish(db, 'tls-renew', tickId, deps.owner, 'ok', { action: out.action });
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    deps.log(`scheduled renewal failed: ${detail}`);
    await finish(db, 'tls-renew', tickId, deps.owner, 'failed', { detail });
  }
}

function renewDeps(deps: AgentDeps) {
  const { work: db, api, owner, now, obtain, log } = deps;
  return { db, ...(api ? { api } : {}), owner, now, obtain, log };
}

export interface RunningAgent {
  readonly server: Server;
  stop(): Promise<void>;
}

export async function startAgent(deps: AgentDeps, port = 8080): Promise<RunningAgent> {
  const handle = challengeHandler(deps.serve);
  const server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve) => server.listen(port, resolve));
  const state: { lastTick?: number } = {};
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  const loop = async () => {
    while (!stopped) {
      running = agentPass(deps, state).catch((err: unknown) => {
        deps.log(`agent pass failed: ${err instanceof Error ? err.message : String(err)}`);
      });
      await running;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  };
  void loop();
  deps.log(
    `agent ${deps.owner} listening on :${port}, checking certificates every ${deps.checkMs / 1000}s`,
  );
  return {
    server,
    async stop() {
      stopped = true;
      await running;
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
