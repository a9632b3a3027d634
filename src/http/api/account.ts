import { z } from 'zod';
import { Text } from './fields.ts';
import type { Registry } from '../../core/registry.ts';
import { ApiError } from '../../core/access/tenancy.ts';
import type { ApiRoute } from './index.ts';
import { present } from './index.ts';

const schemas = {
  changePassword: z.object({ currentPassword: Text.max(4096), newPassword: Text.max(4096) }).strict(),
  resetPassword: z.object({ password: Text.max(4096) }).strict(),
};

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const required = (q: Record<string, unknown>, name: string): string => {
  const v = str(q[name]);
  if (!v) throw new ApiError(400, 'INVALID', `query parameter "${name}" is required`);
  return v;
};
const CONFIRM = { name: 'confirm', description: 'the name of what is deleted, repeated (required)' };

/**
 * Lifecycle routes (docs/api.md#lifecycle): passwords, revoking a user's keys, deleting users,
 * organisations, repositories, images and tags, leaving an organisation. Destructive ones need
 * `?confirm=<name>`.
 */
export function accountApiRoutes(registry: Registry): ApiRoute[] {
  const l = registry.accounts;
  return [
    {
      method: 'PUT',
      url: '/api/v1/user/password',
      summary: 'Change your password (the current one is required)',
      body: schemas.changePassword,
      status: 204,
      handler: async ({ identity, body }) => l.changePassword(identity, body.currentPassword, body.newPassword),
    },
    {
      method: 'PUT',
      url: '/api/v1/users/:username/password',
      summary: "Set another user's password (site administrators)",
      body: schemas.resetPassword,
      status: 204,
      handler: async ({ identity, params, body }) => l.resetPassword(identity, params.username!, body.password),
    },
    {
      method: 'POST',
      url: '/api/v1/users/:username/revoke-keys',
      summary: "Revoke every API key and web session of a user (yourself, or anyone for a site administrator)",
      handler: async ({ identity, params }) => ({ revoked: await l.revokeCredentials(identity, params.username!) }),
    },
    {
      method: 'DELETE',
      url: '/api/v1/users/:username',
      summary: 'Delete a user with their namespace (site administrators; ?confirm=USERNAME)',
      query: [CONFIRM],
      status: 204,
      handler: async ({ identity, params, query }) => l.deleteUser(identity, params.username!, str(query.confirm)),
    },
    {
      method: 'GET',
      url: '/api/v1/orgs',
      summary: 'Organisations the caller can see',
      handler: async ({ identity }) => (await l.listOrgs(identity)).map(present.owner),
    },
    {
      method: 'DELETE',
      url: '/api/v1/orgs/:org',
      summary: 'Delete an organisation with everything in it (its owners; ?confirm=ORG)',
      query: [CONFIRM],
      status: 204,
      handler: async ({ identity, params, query }) => l.deleteOrg(identity, params.org!, str(query.confirm)),
    },
    {
      method: 'POST',
      url: '/api/v1/orgs/:org/leave',
      summary: 'Leave an organisation (its last owner cannot)',
      status: 204,
      handler: async ({ identity, params }) => l.leaveOrg(identity, params.org!),
    },
    {
      method: 'DELETE',
      url: '/api/v1/repos/:owner/:repo',
      summary: 'Delete a repository with its images, tags, tokens, webhooks and upstreams (?confirm=OWNER/REPOSITORY)',
      query: [CONFIRM],
      status: 204,
      handler: async ({ identity, params, query }) => l.deleteRepository(identity, params.owner!, params.repo!, str(query.confirm)),
    },
    {
      method: 'DELETE',
      url: '/api/v1/repos/:owner/:repo/images',
      summary: 'Delete an image with all its manifests and tags (?image=NAME&confirm=OWNER/REPOSITORY/NAME)',
      query: [{ name: 'image', description: 'image name inside the repository' }, CONFIRM],
      status: 204,
      handler: async ({ identity, params, query }) => l.deleteImage(identity, params.owner!, params.repo!, required(query, 'image'), str(query.confirm)),
    },
    {
      method: 'DELETE',
      url: '/api/v1/repos/:owner/:repo/tags',
      summary: 'Delete a tag; the manifest stays, reachable by digest (?image=NAME&tag=TAG)',
      query: [{ name: 'image', description: 'image name inside the repository' }, { name: 'tag', description: 'the tag' }],
      status: 204,
      handler: async ({ identity, params, query }) => l.deleteTag(identity, params.owner!, params.repo!, required(query, 'image'), required(query, 'tag')),
    },
  ];
}
