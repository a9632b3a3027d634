/** Shapes of the /api/v1 answers the pages use (docs/api.md). */
export interface Repo {
  name: string;
  owner: string;
  repository: string;
  visibility: 'public' | 'private';
  description: string;
  canManage?: boolean;
}

export interface ImageSummary {
  name: string;
  image: string;
  tagCount: number;
}

export interface Analytics {
  since: string;
  until: string;
  pulls: number;
  bytes: number;
  uniqueClients: number;
  perDay: { day: string; pulls: number; bytes: number; uniqueClients: number }[];
  perTag: { image: string; tag: string; pulls: number }[];
  perToken: { credentialId: number; kind: string; name: string; actor: string; pulls: number; lastPullAt: string | null }[];
  perActor: { actorKind: string; actor: string; pulls: number }[];
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
