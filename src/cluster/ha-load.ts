import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { isIP } from 'node:net';

/**
 * The HTTP load `doctor --ha` puts on the cluster while it takes nodes out:
 * bounded (a rate, at most a few requests in flight), sent only to the
 * cluster's own proxy nodes, with the app's domain as SNI and Host.
 *
 * A request behaves like a browser with several A records: it tries the
 * addresses in turn (each request starting one further, round-robin), and
 * moves on when an address refuses or does not accept the connection within
 * the connect timeout. Once connected, the answer decides: a 2xx within the
 * request's deadline is a success, anything else a failure. The certificate
 * is not verified: availability is measured here, not the certificate.
 */

export interface LoadTarget {
  /** The proxy nodes' addresses (IPs or host names), in the order to try them. */
  readonly addresses: readonly string[];
  readonly port: number;
  /** SNI and Host header: the app's domain. */
  readonly host: string;
  readonly path: string;
  /** HTTPS (the default); plain HTTP when the cluster serves without TLS. */
  readonly tls: boolean;
}

export interface RequestLimits {
  /** Per address: give up on it when TCP is not connected after this long (default 1000). */
  readonly connectTimeoutMs?: number;
  /** The whole request, every address included (default 5000). */
  readonly timeoutMs?: number;
  readonly now?: () => number;
}

export interface RequestResult {
  /** Clock readings (the injected clock, ms). */
  readonly start: number;
  readonly end: number;
  readonly ok: boolean;
  readonly status?: number;
  /** The address that answered (or the last one tried). */
  readonly address?: string;
  /** Addresses tried. */
  readonly tried: number;
  /** Why it failed: `HTTP 502`, `timeout`, `ECONNREFUSED on every address`… */
  readonly error?: string;
}

const CONNECT_TIMEOUT_MS = 1000;
const REQUEST_TIMEOUT_MS = 5000;

type Attempt =
  | { readonly kind: 'unreachable'; readonly error: string }
  | { readonly kind: 'answered'; readonly status: number }
  | { readonly kind: 'failed'; readonly error: string };

function attempt(
  address: string,
  t: LoadTarget,
  connectTimeoutMs: number,
  remainingMs: number,
): Promise<Attempt> {
  return new Promise((resolve) => {
    let connected = false;
    let settled = false;
    const timers: NodeJS.Timeout[] = [];
    const finish = (a: Attempt) => {
      if (settled) return;
      settled = true;
      for (const x of timers) clearTimeout(x);
      resolve(a);
      req.destroy();
    };
    const options = {
      host: address,
      port: t.port,
      path: t.path,
      method: 'GET',
      headers: { Host: t.host, Connection: 'close', 'User-Agent': 'cluster-cli doctor --ha' },
      agent: false as const,
    };
    const req = t.tls
      ? httpsRequest({
          ...options,
          ...(isIP(t.host) ? {} : { servername: t.host }),
          rejectUnauthorized: false,
        })
      : httpRequest(options);
    req.on('socket', (socket: Socket) => {
      const onConnect = () => {
        connected = true;
      };
      if (!socket.connecting) onConnect();
      else socket.once('connect', onConnect);
      timers.push(
        setTimeout(() => {
          if (!connected) finish({ kind: 'unreachable', error: 'connect timeout' });
        }, connectTimeoutMs),
      );
    });
    timers.push(
      setTimeout(
        () =>
          finish(
            connected
              ? { kind: 'failed', error: 'timeout' }
              : { kind: 'unreachable', error: 'timeout' },
          ),
        Math.max(1, remainingMs),
      ),
    );
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      res.on('end', () => finish({ kind: 'answered', status }));
      res.on('error', (e: NodeJS.ErrnoException) =>
        finish({ kind: 'failed', error: e.code ?? e.message }),
      );
      res.resume();
    });
    req.on('error', (e: NodeJS.ErrnoException) => {
      const error = e.code ?? e.message;
      finish(connected ? { kind: 'failed', error } : { kind: 'unreachable', error });
    });
    req.end();
  });
}

/**
 * One request: the addresses tried from `first` on (wrapping), each at most
 * once, until one connects or the deadline passes.
 */
export async function requestOnce(
  t: LoadTarget,
  first = 0,
  limits: RequestLimits = {},
): Promise<RequestResult> {
  const now = limits.now ?? (() => performance.now());
  const connectTimeoutMs = limits.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
  const timeoutMs = limits.timeoutMs ?? REQUEST_TIMEOUT_MS;
  const start = now();
  const n = t.addresses.length;
  if (!n) return { start, end: start, ok: false, tried: 0, error: 'no address' };
  const errors: string[] = [];
  let tried = 0;
  let address: string | undefined;
  for (let k = 0; k < n; k++) {
    const remaining = timeoutMs - (now() - start);
    if (remaining <= 0) break;
    address = t.addresses[(first + k) % n] as string;
    tried++;
    const a = await attempt(address, t, Math.min(connectTimeoutMs, remaining), remaining);
    if (a.kind === 'unreachable') {
      errors.push(a.error);
      continue;
    }
    const end = now();
    if (a.kind === 'failed') return { start, end, ok: false, address, tried, error: a.error };
    const ok = a.status >= 200 && a.status < 300 && end - start <= timeoutMs;
    return {
      start,
      end,
      ok,
      status: a.status,
      address,
      tried,
      ...(ok ? {} : { error: a.status >= 200 && a.status < 300 ? 'too slow' : `HTTP ${a.status}` }),
    };
  }
  const end = now();
  const distinct = [...new Set(errors)];
  return {
    start,
    end,
    ok: false,
    ...(address ? { address } : {}),
    tried,
    error: tried < n ? 'timeout' : `${distinct.join('/') || 'unreachable'} on every address`,
  };
}

export interface LoadOptions extends RequestLimits {
  /** Requests started per second. */
  readonly rps: number;
  /** At most this many at once (default 4): a tick that finds them all busy sends nothing. */
  readonly maxInFlight?: number;
}

export interface LoadStats {
  /** Requests sent (and finished). */
  readonly requests: number;
  readonly successes: number;
  readonly failures: number;
  /** Ticks that sent nothing because maxInFlight requests were still running. */
  readonly notSent: number;
  /** successes / requests (0 without requests). */
  readonly successRate: number;
  /** Requests per second over the window. */
  readonly rate: number;
  /** The longest time without a successful answer (window edges included). */
  readonly worstGapMs: number;
  readonly windowMs: number;
  /** Failures by reason. */
  readonly errors: Readonly<Record<string, number>>;
}

/** Pure: the numbers of a load window. */
export function loadStats(
  results: readonly RequestResult[],
  window: { readonly start: number; readonly end: number },
  notSent = 0,
): LoadStats {
  const windowMs = Math.max(0, window.end - window.start);
  const successes = results.filter((r) => r.ok);
  const ends = successes
    .map((r) => Math.min(Math.max(r.end, window.start), window.end))
    .sort((a, b) => a - b);
  let worstGapMs = 0;
  let last = window.start;
  for (const e of ends) {
    worstGapMs = Math.max(worstGapMs, e - last);
    last = e;
  }
  worstGapMs = Math.max(worstGapMs, window.end - last);
  const errors: Record<string, number> = {};
  for (const r of results) {
    if (r.ok) continue;
    const k = r.error ?? 'failed';
    errors[k] = (errors[k] ?? 0) + 1;
  }
  return {
    requests: results.length,
    successes: successes.length,
    failures: results.length - successes.length,
    notSent,
    successRate: results.length ? successes.length / results.length : 0,
    rate: windowMs > 0 ? (results.length * 1000) / windowMs : 0,
    worstGapMs,
    windowMs,
    errors,
  };
}

export interface LoadRun {
  /** Requests finished so far. */
  readonly results: readonly RequestResult[];
  /** Stop sending, wait for the requests in flight, and return the window's numbers. */
  stop(): Promise<LoadStats>;
}

/**
 * Sustained load: a request every 1/rps seconds (on a fixed schedule, so a
 * slow answer does not shift the next), at most maxInFlight at once, until
 * stop().
 */
export function startLoad(t: LoadTarget, o: LoadOptions): LoadRun {
  if (!(o.rps > 0)) throw new Error(`startLoad: bad rate ${o.rps}`);
  const now = o.now ?? (() => performance.now());
  const maxInFlight = o.maxInFlight ?? 4;
  const interval = 1000 / o.rps;
  const results: RequestResult[] = [];
  const inFlight = new Set<Promise<void>>();
  const start = now();
  let sent = 0;
  let ticks = 0;
  let notSent = 0;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  const tick = () => {
    if (stopped) return;
    if (inFlight.size < maxInFlight) {
      const p: Promise<void> = requestOnce(t, sent++, o).then((r) => {
        results.push(r);
        inFlight.delete(p);
      });
      inFlight.add(p);
    } else notSent++;
    ticks++;
    timer = setTimeout(tick, Math.max(0, start + ticks * interval - now()));
  };
  tick();

  return {
    results,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      const end = now();
      await Promise.all([...inFlight]);
      return loadStats(results, { start, end }, notSent);
    },
  };
}
