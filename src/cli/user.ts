import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { daemonTime } from '../cluster/converge.js';
import { editConfigText } from '../config/edit.js';
import { validateConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import type { DockerApi } from '../core/api.js';
import { UserError } from '../core/errors.js';
import { change, changesOf, type Plan, type Step } from '../core/plan.js';
import { Secret, secret } from '../core/secret.js';
import type { Queryable } from '../db/queryable.js';
import {
  buildStackModel,
  configServiceNames,
  type LiveSecrets,
  secretNames,
} from '../stack/model.js';
import { servesHttps, tlsState } from '../stack/providers/types.js';
import { secretCreateRequest } from '../tls/deliver.js';
import { formatTable } from '../ui/table.js';
import { bcryptHash, caddyBasicAuth, htpasswdFile } from '../users/htpasswd.js';
import {
  checkPasswordPolicy,
  generatePassword,
  validateEmail,
  validateUserName,
} from '../users/password.js';
import {
  checkLogin,
  createUser,
  dashboardUsers,
  deleteUser,
  listUsers,
  setDisabled,
  setPassword,
  type User,
} from '../users/store.js';
import { parseTimeoutFlag, readAll } from './ask.js';
import { cfgFlag, openCluster, stackStepsFor } from './cluster.js';
import type { SshFlags } from './connect.js';
import type { Ctx } from './context.js';
import { converge } from './converge-progress.js';
import { withDatabase } from './db.js';
import { type PipelineFlags, runPipeline } from './pipeline.js';
import { updateProxyLive } from './proxy-live.js';

export interface UserFlags extends SshFlags, PipelineFlags {
  config: string;
  timeout?: string;
}

export interface PasswordFlags {
  passwordStdin?: boolean;
  generate?: boolean;
}

/**
 * `user create <name> --email …`: an admin of the platform, stored in the
 * cluster_cli schema of its PostgreSQL (scrypt), reached over SSH. The first
 * admin is also handed to the app (ADMIN_EMAIL + a Docker secret with the
 * initial password); every admin guards the proxy's dashboard.
 */
export async function runUserCreate(
  name: string,
  opts: UserFlags & PasswordFlags & { email?: string },
  ctx: Ctx,
): Promise<void> {
  validateUserName(name);
  if (!opts.email) {
    throw new UserError(
      'user create needs --email.',
      `cluster-cli user create ${name} --email admin@example.com`,
    );
  }
  const email = validateEmail(opts.email);
  const password = await readNewPassword(ctx, opts);
  await mutate(ctx, opts, {
    verb: 'create',
    title: `Create admin user ${name} <${email}> (scrypt hash in ${'cluster_cli.users'})`,
    async check(db) {
      const users = await listUsers(db);
      if (users.some((u) => u.name === name)) {
        throw new UserError(
          `User ${name} exists already.`,
          `change its password instead: cluster-cli user passwd ${name}`,
        );
      }
      const other = users.find((u) => u.email.toLowerCase() === email.toLowerCase());
      if (other) {
        throw new UserError(
          `${email} is already the email of user ${other.name}.`,
          'cluster-cli user list',
        );
      }
      return users.length === 0;
    },
    firstAdmin: { email, password },
    run: (db) => createUser(db, { name, email, password }),
    ...(opts.generate ? { shown: password } : {}),
  });
}

export async function runUserPasswd(
  name: string,
  opts: UserFlags & PasswordFlags,
  ctx: Ctx,
): Promise<void> {
  validateUserName(name);
  const password = await readNewPassword(ctx, opts);
  await mutate(ctx, opts, {
    verb: 'passwd',
    title: `Set a new password for ${name}`,
    check: async (db) => {
      await mustExist(db, name);
      return false;
    },
    run: (db) => setPassword(db, name, password),
    ...(opts.generate ? { shown: password } : {}),
  });
}

export async function runUserEnable(
  name: string,
  disabled: boolean,
  opts: UserFlags,
  ctx: Ctx,
): Promise<void> {
  validateUserName(name);
  await mutate(ctx, opts, {
    verb: disabled ? 'disable' : 'enable',
    title: `${disabled ? 'Disable' : 'Enable'} ${name}`,
    check: async (db) => {
      await mustExist(db, name);
      return false;
    },
    run: (db) => setDisabled(db, name, disabled),
  });
}

export async function runUserDelete(name: string, opts: UserFlags, ctx: Ctx): Promise<void> {
  validateUserName(name);
  await mutate(ctx, opts, {
    verb: 'delete',
    title: `Delete ${name}`,
    check: async (db) => {
      await mustExist(db, name);
      return false;
    },
    run: async (db) => {
      await deleteUser(db, name);
      return undefined;
    },
  });
}

export async function runUserList(
  opts: SshFlags & { config: string; json?: boolean },
  ctx: Ctx,
): Promise<void> {
  const h = await openCluster(ctx, opts);
  try {
    await withDatabase(ctx, h, opts, async (db) => {
      const users = await listUsers(db);
      if (opts.json) {
        ctx.stdout.write(`${JSON.stringify(users, null, 2)}\n`);
        return;
      }
      if (!users.length) {
        ctx.stdout.write(
          `No admin users yet.\n\nNext:\n  cluster-cli user create <name> --email <address>${cfgFlag(opts)}\n`,
        );
        return;
      }
      ctx.stdout.write(
        `${formatTable(
          ['NAME', 'EMAIL', 'STATE', 'CREATED', 'PASSWORD CHANGED'],
          users.map((u) => [
            u.name,
            u.email,
            u.disabled ? 'disabled' : 'active',
            iso(u.createdAt),
            iso(u.passwordChangedAt),
          ]),
        )}\n`,
      );
    });
  } finally {
    await h.manager.session.close();
  }
}

/** `user verify <name> --password-stdin`: does this password log in? Exit 0 yes, 1 no. */
export async function runUserVerify(
  name: string,
  opts: SshFlags & { config: string; json?: boolean } & PasswordFlags,
  ctx: Ctx,
): Promise<boolean> {
  const password = await readPassword(ctx, opts, false);
  const h = await openCluster(ctx, opts);
  try {
    return await withDatabase(ctx, h, opts, async (db) => {
      const user = await checkLogin(db, name, password);
      if (!user) {
        throw new UserError(
          `${name}: password refused (or the user is unknown or disabled).`,
          `set a new one: cluster-cli user passwd ${name}`,
          1,
        );
      }
      ctx.stdout.write(
        opts.json ? `${JSON.stringify({ name, ok: true })}\n` : `${name}: password accepted\n`,
      );
      return true;
    });
  } finally {
    await h.manager.session.close();
  }
}

// ------------------------------------------------------------- internals --

interface Mutation {
  readonly verb: string;
  readonly title: string;
  /** Refuse before anything changes; returns whether the table is empty (a first admin). */
  check(db: Queryable): Promise<boolean>;
  run(db: Queryable): Promise<User | undefined>;
  /** With `create`: becomes the app's bootstrap admin when there is none yet. */
  readonly firstAdmin?: { readonly email: string; readonly password: Secret };
  /** A generated password, printed once in the summary. */
  readonly shown?: Secret;
}

/**
 * Every user change on the shared pipeline: the plan shows the database
 * change, the app update for a first admin, and the dashboard's users file;
 * the database is written after the confirmation, then the proxy gets the
 * new users file.
 */
async function mutate(ctx: Ctx, opts: UserFlags, m: Mutation): Promise<void> {
  const timeoutS = parseTimeoutFlag(opts.timeout);
  const h = await openCluster(ctx, opts);
  try {
    await withDatabase(ctx, h, opts, async (db) => {
      const empty = await m.check(db);
      const manager = h.manager.session;
      const label = manager.exec.label;
      // The first admin becomes the app's bootstrap admin (cluster.yaml records the email).
      let next: { config: Config; text: string } | undefined;
      let stack: ReturnType<typeof stackStepsFor> | undefined;
      if (m.firstAdmin && empty && !h.config.app.adminEmail) {
        const input = structuredClone(h.input);
        input.app = { ...(input.app ?? {}), adminEmail: m.firstAdmin.email };
        const { config } = validateConfig(input, h.configArg);
        next = { config, text: editConfigText(h.text, input) };
        const adminSecret = secretNames(config.name, true).adminPassword as string;
        stack = stackStepsFor(h, config, false, {
          [adminSecret]: new Secret(m.firstAdmin.password.reveal(), adminSecret),
        });
      }
      const dashboard = dashboardServed(h.config);
      const steps: Step[] = [
        change('user', label, m.title, []),
        ...(stack?.steps.filter((s) => s.action === 'change') ?? []),
        ...(dashboard
          ? [
              change(
                'dashboard',
                label,
                `Update the users of the dashboard at https://${h.config.proxy.dashboard}/ (proxy)`,
                [],
              ),
            ]
          : []),
      ];
      const plan: Plan = { title: `user ${m.verb} on ${h.config.name}`, steps };
      let since: Date | undefined;
      let user: User | undefined;
      const outcome = await runPipeline(ctx, opts, {
        name: `user ${m.verb}`,
        plan,
        sessions: new Map([[label, manager]]),
        async beforeApply() {
          user = await m.run(db);
          if (stack?.deploys) since = await daemonTime(manager.docker()).catch(() => undefined);
        },
        async converge(mode) {
          if (stack?.deploys && next) {
            await converge(manager.docker(), ctx.stdout, mode, {
              stack: next.config.name,
              services: configServiceNames(next.config),
              timeoutMs: (timeoutS ?? next.config.deploy.timeout) * 1000,
              ...(since ? { since } : {}),
            });
          }
          if (dashboard) {
            const live = await dashboardLive(manager.docker(), h.config, db);
            await updateProxyLive(ctx, h, live, { mode, ...(timeoutS ? { timeoutS } : {}) });
          }
          return undefined;
        },
        async save(report) {
          if (next && report && !report.failed.size) await writeFile(h.file, next.text);
        },
        summary() {
          const lines = ['', `Done: ${m.title}.`];
          if (m.shown) {
            lines.push(`Generated password (shown once, store it now): ${m.shown.reveal()}`);
          }
          if (next)
            lines.push(
              `The app gets ${next.config.app.adminEmail} as its first admin (ADMIN_EMAIL, ADMIN_PASSWORD_FILE).`,
            );
          lines.push('', 'Next:', `  cluster-cli user list${cfgFlag(opts)}`, '');
          return {
            text: lines.join('\n'),
            json: {
              user,
              ...(m.shown ? { password: m.shown.reveal() } : {}),
              changed: changesOf(plan).map((s) => s.title),
            },
          };
        },
      });
      void outcome;
    });
  } finally {
    await h.manager.session.close();
  }
}

async function mustExist(db: Queryable, name: string): Promise<void> {
  const users = await listUsers(db);
  if (!users.some((u) => u.name === name)) {
    throw new UserError(`No user ${name}.`, 'see the users: cluster-cli user list');
  }
}

/** The dashboard is rendered (and so needs its users file) when configured and HTTPS is on. */
function dashboardServed(config: Config): boolean {
  return (
    Boolean(config.proxy.dashboard) &&
    servesHttps(tlsState(buildStackModel(config, { tlsCert: 'x', tlsKey: 'x' })))
  );
}

/**
 * The dashboard's users file as a Docker secret, in the provider's format,
 * named by its content. No enabled admin: a locked account nobody knows, so
 * the dashboard refuses everyone rather than opening up.
 */
export async function dashboardLive(
  api: DockerApi,
  config: Config,
  db: Queryable,
): Promise<LiveSecrets> {
  let users = (await dashboardUsers(db)).filter((u) => !u.disabled);
  if (!users.length) {
    users = [
      { name: 'locked', dashboardHash: await bcryptHash(secret(randomBytes(24).toString('hex'))) },
    ];
  }
  const content = config.proxy.provider === 'caddy' ? caddyBasicAuth(users) : htpasswdFile(users);
  const name = `${config.name}_dashboard_users_${createHash('sha256').update(content).digest('hex').slice(0, 12)}`;
  const have = await api.request<{ Spec: { Name: string } }[]>({
    kind: 'api',
    method: 'GET',
    path: '/secrets',
    query: { filters: JSON.stringify({ name: [name] }) },
    readOnly: true,
  });
  if (!have.some((s) => s.Spec.Name === name)) {
    await api.request(
      secretCreateRequest(name, secret(content), { 'io.cluster-cli.dashboard': config.name }),
    );
  }
  return { dashboardUsers: name };
}

async function readNewPassword(ctx: Ctx, opts: PasswordFlags): Promise<Secret> {
  if (opts.generate && opts.passwordStdin) {
    throw new UserError(
      '--generate and --password-stdin both give the password.',
      'pass one of them',
    );
  }
  if (opts.generate) return generatePassword();
  const pw = await readPassword(ctx, opts, true);
  checkPasswordPolicy(pw);
  return pw;
}

async function readPassword(ctx: Ctx, opts: PasswordFlags, twice: boolean): Promise<Secret> {
  if (opts.passwordStdin) {
    const text = await readAll(ctx.stdin ?? process.stdin);
    const pw = text.replace(/\r?\n$/, '');
    if (!pw)
      throw new UserError(
        'No password on stdin.',
        'printf \'%s\' "$PASSWORD" | cluster-cli user … --password-stdin',
      );
    return secret(pw);
  }
  if (!ctx.interactive) {
    throw new UserError(
      'A password is needed and there is no terminal to ask on.',
      'pass it on stdin with --password-stdin, or let cluster-cli make one with --generate',
    );
  }
  const first = await ctx.prompts.password({ message: 'Password (12 characters at least):' });
  if (twice) {
    const again = await ctx.prompts.password({ message: 'Same password again:' });
    if (again !== first) throw new UserError('The two passwords differ.', 'run the command again');
  }
  return secret(first);
}

function iso(d: Date | string | undefined): string {
  if (!d) return '';
  return new Date(d).toISOString().replace(/\.\d+Z$/, 'Z');
}
