/** Shapes of the /api/v1 answers the pages use (docs/api.md). */
export interface Repo {
  name: string;
  owner: string;
  repository: string;
  visibility: 'public' | 'private';
  description: string;
  canManage?: boolean;
}

/** GET /api/v1/repos/{owner}/{repo}/lifecycle */
export interface Lifecycle {
  repository: string;
  immutableTags: string;
  quotaBytes: number | null;
  usageBytes: number;
  owner: { name: string; quotaBytes: number | null; usageBytes: number };
}

/** GET /api/v1/owners/{owner}/usage */
export interface OwnerUsage {
  owner: string;
  quotaBytes: number | null;
  usageBytes: number | null;
  repositories: { repository: string; usageBytes: number }[];
}

export interface ImageSummary {
  name: string;
  image: string;
  tagCount: number;
  kind: KindInfo | null;
  size: number | null;
  lastPushedAt: string | null;
  latestTag: string | null;
}

export interface Analytics {
  since: string;
  until: string;
  pulls: number;
  bytes: number;
  uniqueClients: number;
  perDay: { day: string; pulls: number; bytes: number; uniqueClients: number }[];
  perTag: { image: string; tag: string; pulls: number }[];
  perToken: { credentialId: number; kind: string | null; name: string | null; actor: string; pulls: number; bytes: number; lastPullAt: string | null }[];
  perActor: { actorKind: string; actor: string; pulls: number; bytes: number }[];
}

export interface TagEntry {
  name: string;
  digest: string;
  updatedAt: number;
}

export interface KindInfo {
  kind: string;
  label: string;
  platforms?: string[];
}
export interface ReferrerNode {
  digest: string;
  mediaType: string;
  artifactType: string | null;
  size: number;
  kind: KindInfo;
  annotations: Record<string, string> | null;
  referrers: ReferrerNode[];
}
export interface Detail {
  name: string;
  digest: string;
  mediaType: string;
  artifactType: string | null;
  kind: KindInfo;
  size: number;
  manifestSize: number;
  pushedAt: string;
  createdAt: string | null;
  tags: string[];
  config: { mediaType: string; digest: string; size: number; content?: unknown } | null;
  layers: { mediaType: string; digest: string; size: number }[];
  manifests: { mediaType: string; digest: string; size: number; platform?: string; artifactType?: string }[];
  subject: { digest: string } | null;
  annotations: Record<string, string>;
  referrers: ReferrerNode[];
  /** Stored by the pull-through cache from an upstream registry. */
  cached?: boolean;
}

export interface Credential {
  id: number;
  name: string;
  prefix: string;
  expiresAt: string | null;
  downloadLimit?: number | null;
  downloadCount?: number;
  revokedAt: string | null;
  lastUsedAt: string | null;
  createdAt: string;
}

export interface ImportJob {
  id: string;
  state: 'queued' | 'running' | 'done' | 'failed';
  progress: { blobs: { total: number; uploaded: number; skipped: number }; bytes: { total: number; done: number } };
  images: { name: string; digest: string; tags: string[] }[];
  warnings: string[];
  error: { code: string; message: string } | null;
}

export interface User {
  username: string;
  siteAdmin: boolean;
  email: string | null;
  createdAt: string;
}

export interface Member {
  username: string;
  role: string;
  createdAt: string;
}

export interface Upstream {
  id: number;
  url: string;
  username: string | null;
  priority: number;
  cache: boolean;
  prefix: string;
  remotePrefix: string;
  createdAt: string;
}

export interface Webhook {
  id: number;
  url: string;
  events: string[];
  active: boolean;
  createdBy: string;
  createdAt: string;
}

export interface Delivery {
  id: string;
  event: string;
  status: string;
  attempts: number;
  responseStatus: number | null;
  error: string | null;
  createdAt: string;
}

export interface AuditEvent {
  id: number;
  time: string;
  action: string;
  actor: { kind: string; name: string; credentialId: number | null };
  repository: string | null;
  image: string | null;
  reference: string | null;
  status: number;
  clientIp: string | null;
}

export interface SearchResult {
  owners: { name: string; kind: string }[];
  repositories: { owner: string; repository: string }[];
  images: { owner: string; repository: string; image: string }[];
  tags: { owner: string; repository: string; image: string; tag: string; digest: string }[];
}

/** GET /api/v1/repos/:owner/:repo/sbom/status (docs/supply-chain.md). */
export interface SbomStatus {
  digest: string;
  state: 'generated' | 'empty' | 'pending' | 'off' | 'not-an-image';
  generatedAt?: string;
  packageCount?: number;
  sbom?: string;
}

/** GET /api/v1/repos/:owner/:repo/signing (docs/signing.md). */
export interface SigningSettings {
  repository: string;
  signOnPush: boolean;
  requireSignature: boolean;
  identity: string;
}

/** One tag's signature verdict (GET /api/v1/repos/:owner/:repo/signatures). */
export interface TagSignature {
  tag: string;
  digest: string;
  state: 'signed' | 'invalid' | 'unsigned';
  summary: string;
}

/** A request and byte limit (docs/limits.md). */
export interface RateLimit {
  kind: 'anonymous' | 'user' | 'token' | 'repository';
  /** Username, token id, OWNER/REPOSITORY; null: the default of the kind. */
  subject: string | null;
  name?: string | null;
  credentialKind?: string;
  repository?: string | null;
  requestsPerMinute: number | null;
  bytesPerDay: number | null;
  setBySiteAdmin: boolean;
  updatedAt: string;
}

/** A custom domain (GET /api/v1/domains; docs/domains.md). */
export interface Domain {
  host: string;
  owner: string;
  repository: string | null;
  target: string;
  mirror: boolean;
  certificate: boolean;
  certificateExpiresAt: string | null;
  createdAt: string;
}
