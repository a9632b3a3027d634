import { z } from 'zod';
import { MultilineText, Text } from './fields.ts';
import type { Registry } from '../../core/registry.ts';
import { ApiError } from '../../core/access/tenancy.ts';
import type { ApiRoute } from './index.ts';
import { RawResponse } from './raw.ts';

const schemas = {
  settings: z.object({ signOnPush: z.boolean().optional(), requireSignature: z.boolean().optional() }).strict(),
  addKey: z.object({ publicKey: MultilineText.min(1).max(8192), name: Text.min(1).max(200).default('trusted key') }).strict(),
};

const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

/** Repository signing (docs/signing.md): the public key, settings, trusted keys, rotation and verdicts per tag. */
export function signingApiRoutes(registry: Registry): ApiRoute[] {
  const signing = registry.signing;
  return [
    {
      method: 'GET',
      url: '/api/v1/repos/:owner/:repo/signing-key.pub',
      summary: "The repository's current signing public key (PEM; created on first use), for cosign verify --key / policy.json (whoever may pull)",
      handler: async ({ identity, params }) => new RawResponse(200, 'application/x-pem-file', await signing.publicKey(identity, params.owner!, params.repo!)),
    },
    {
      method: 'GET',
      url: '/api/v1/repos/:owner/:repo/signing',
      summary: "A repository's signing settings: sign on push, require signature, the identity its signatures carry",
      handler: async ({ identity, params }) => signing.getSettings(identity, params.owner!, params.repo!),
    },
    {
      method: 'PUT',
      url: '/api/v1/repos/:owner/:repo/signing',
      summary: 'Turn signing on push and the "require signature" pull policy on or off (repository managers)',
      body: schemas.settings,
      handler: async ({ identity, params, body }) => signing.setSettings(identity, params.owner!, params.repo!, body),
    },
    {
      method: 'GET',
      url: '/api/v1/repos/:owner/:repo/signing-keys',
      summary: 'Keys the repository trusts: its own (current and rotated-out) and public keys an owner added; never a private key',
      handler: async ({ identity, params }) => signing.listKeys(identity, params.owner!, params.repo!),
    },
    {
      method: 'POST',
      url: '/api/v1/repos/:owner/:repo/signing-keys',
      summary: 'Trust a public key (PEM: ECDSA P-256/384/521 or RSA ≥ 2048) for signatures clients push (repository managers)',
      body: schemas.addKey,
      status: 201,
      handler: async ({ identity, params, body }) => signing.addKey(identity, params.owner!, params.repo!, body.publicKey, body.name),
    },
    {
      method: 'POST',
      url: '/api/v1/repos/:owner/:repo/signing-keys/rotate',
      summary: 'Replace the repository key with a new one; the old one keeps verifying what it signed (repository managers)',
      status: 201,
      handler: async ({ identity, params }) => signing.rotate(identity, params.owner!, params.repo!),
    },
    {
      method: 'DELETE',
      url: '/api/v1/repos/:owner/:repo/signing-keys/:keyId',
      summary: 'Stop trusting an added public key (repository managers)',
      status: 204,
      handler: async ({ identity, params }) => signing.removeKey(identity, params.owner!, params.repo!, params.keyId!),
    },
    {
      method: 'GET',
      url: '/api/v1/repos/:owner/:repo/signatures',
      summary: "Signature verdict of an image's tags: signed (by which key, since when), signature does not verify, unsigned",
      query: [
        { name: 'image', description: 'image name inside the repository' },
        { name: 'tags', description: 'comma-separated tags (at most 100); default the first 100' },
      ],
      handler: async ({ identity, params, query }) => {
        const image = typeof query.image === 'string' ? query.image : '';
        if (!image) throw new ApiError(400, 'INVALID', 'image is required');
        const tags = typeof query.tags === 'string' && query.tags ? query.tags.split(',') : undefined;
        if (tags && (tags.length > 100 || tags.some((t) => !TAG.test(t)))) throw new ApiError(400, 'INVALID', 'tags: at most 100 valid tags, comma-separated');
        return { tags: await signing.tagVerdicts(identity, params.owner!, params.repo!, image, tags) };
      },
    },
  ];
}
