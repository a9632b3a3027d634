import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Action, Identity } from '../core/access/access.ts';
import { RegistryError } from '../core/errors.ts';
import { parseImageName } from '../core/content/names.ts';
import type { Registry } from '../core/registry.ts';
import { type AccessGrant, parseScope, scopeActions } from '../core/access/tokens.ts';
import { cleanCredentials, type HttpAuth } from './auth.ts';
import { readSmallBody } from './distribution/util.ts';

function list(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
  return [];
}

/**
 * The Docker bearer-token endpoint (distribution's token spec): `GET /v2/token?service=&scope=…`
 * with Basic credentials or none, and the OAuth2 password grant on `POST /v2/token`. The token
 * grants, for each requested scope, the requested actions the identity holds — possibly none.
 */
export function tokenRoutes(app: FastifyInstance, registry: Registry, auth: HttpAuth): void {
  async function grantsFor(req: FastifyRequest, identity: Identity, scopes: string[]): Promise<AccessGrant[]> {
    const host = req.berthHost;
    const access: AccessGrant[] = [];
    for (const raw of scopes) {
      for (const part of raw.split(' ').filter(Boolean)) {
        const scope = parseScope(part);
        if (!scope) continue;
        if (scope.type === 'registry') {
          if (scope.name === 'catalog') access.push({ type: 'registry', name: 'catalog', actions: ['*'] });
          continue;
        }
        // On a custom domain the scope names the short name; access is decided on the long
        // one. A name outside the mapping is granted nothing.
        const long = host ? host.toLong(scope.name) : scope.name;
        if (long === undefined) continue;
        let held = new Set<Action>();
        try {
          const name = parseImageName(long);
          held = (await registry.access.check(identity, name.owner, name.repository)).actions;
        } catch (e) {
          if (!(e instanceof RegistryError)) throw e;
        }
        // The token keeps the name the client asked for (its audience says which host maps it).
        const granted = scopeActions(scope.actions).filter((a) => held.has(a) && (a === 'pull' || !host?.target.mirror));
        const existing = access.find((g) => g.type === 'repository' && g.name === scope.name);
        if (existing) existing.actions = [...new Set([...existing.actions, ...granted])];
        else access.push({ type: 'repository', name: scope.name, actions: granted });
      }
    }
    return access;
  }

  async function respond(req: FastifyRequest, reply: FastifyReply, service: string | undefined, scopes: string[], identity: Identity) {
    const ours = auth.service(req);
    if (service !== undefined && service !== ours) {
      throw new RegistryError('DENIED', `this registry issues tokens for service "${ours}", not "${service.slice(0, 100)}"`, { status: 400 });
    }
    const access = await grantsFor(req, identity, scopes);
    const t = await registry.tokens.issue(identity, access, ours);
    reply.header('Cache-Control', 'no-store');
    return {
      token: t.token,
      access_token: t.token,
      expires_in: t.expiresIn,
      issued_at: t.issuedAt.toISOString(),
    };
  }

  app.get('/v2/token', async (req, reply) => {
    const q = req.query as Record<string, unknown>;
    const { identity } = await auth.authenticate(req);
    if (identity.kind === 'anonymous' && req.headers.authorization) {
      throw auth.unauthorized(req, 'unsupported credentials');
    }
    return respond(req, reply, list(q.service)[0], list(q.scope), identity);
  });

  app.post('/v2/token', async (req, reply) => {
    const body = await readSmallBody(req, 64 * 1024, () => new RegistryError('UNSUPPORTED', 'token request too large', { status: 413 }));
    const form = new URLSearchParams(body.toString('utf8'));
    const grant = form.get('grant_type');
    let identity: Identity;
    if (grant === 'password') {
      const username = form.get('username') ?? '';
      const password = form.get('password') ?? '';
      if (!cleanCredentials(username, password)) throw auth.unauthorized(req, 'malformed credentials: control characters in the username or password');
      identity = await auth.checkBasic(req, username, password);
    } else if (grant === null || grant === '') {
      identity = (await auth.authenticate(req)).identity;
    } else {
      throw new RegistryError('UNSUPPORTED', `grant_type "${grant.slice(0, 40)}" is not supported; use password`, { status: 400 });
    }
    return respond(req, reply, form.get('service') ?? undefined, form.getAll('scope'), identity);
  });
}
