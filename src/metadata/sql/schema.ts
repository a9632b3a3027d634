import type { Generated } from 'kysely';

/** Kysely table types. Times are milliseconds since the epoch. */
export interface Database {
  owners: { id: Generated<number>; name: string; kind: string; created_at: number };
  repositories: {
    id: Generated<number>;
    owner_id: number;
    name: string;
    visibility: string;
    description: string;
    created_at: number;
  };
  images: { id: Generated<number>; repository_id: number; name: string; created_at: number };
  blobs: { digest: string; size: number; created_at: number; state: Generated<string>; generation: Generated<number>; last_used_at: Generated<number> };
  image_blobs: { image_id: number; digest: string; created_at: number; cached: Generated<number> };
  manifests: {
    id: Generated<number>;
    image_id: number;
    digest: string;
    media_type: string;
    artifact_type: string | null;
    subject_digest: string | null;
    config_digest: string | null;
    size: number;
    payload: Buffer;
    annotations: string | null;
    created_at: number;
    cached: Generated<number>;
  };
  manifest_refs: { manifest_id: number; child_digest: string; kind: string };
  tags: { image_id: number; name: string; manifest_id: number; updated_at: number };
  uploads: { id: string; image_id: number; started_at: number; started_by: string | null };
  users: {
    id: Generated<number>;
    username: string;
    owner_id: number;
    password_hash: string | null;
    site_admin: number;
    email: string | null;
    created_at: number;
  };
  memberships: {
    id: Generated<number>;
    user_id: number;
    owner_id: number | null;
    repository_id: number | null;
    role: string;
    created_at: number;
  };
  credentials: {
    id: Generated<number>;
    kind: string;
    user_id: number | null;
    repository_id: number | null;
    name: string;
    prefix: string;
    secret_hash: string;
    expires_at: number | null;
    download_limit: number | null;
    download_count: Generated<number>;
    revoked_at: number | null;
    last_used_at: number | null;
    created_at: number;
  };
  settings: { key: string; value: string };
  login_failures: { key: string; failures: number; since: number; last_at: number };
  upstreams: {
    id: Generated<number>;
    repository_id: number;
    url: string;
    username: string | null;
    password_enc: string | null;
    priority: number;
    cache: number;
    prefix: string;
    remote_prefix: string;
    created_at: number;
  };
  events: {
    id: Generated<number>;
    time: number;
    action: string;
    actor_kind: string;
    actor: string;
    credential_id: number | null;
    repository: string | null;
    image: string | null;
    reference: string | null;
    digest: string | null;
    client_ip: string | null;
    user_agent: string | null;
    bytes: number | null;
    status: number;
    detail: string | null;
  };
  webhooks: {
    id: Generated<number>;
    repository_id: number;
    url: string;
    secret: string;
    events: string;
    active: number;
    created_by: string;
    created_at: number;
  };
  repository_lifecycle: { repository_id: number; immutable_tags: string; quota_bytes: number | null; retention: string | null; updated_at: number };
  owner_lifecycle: { owner_id: number; quota_bytes: number | null; retention: Generated<string | null>; updated_at: number };
  manifest_pulls: { image_id: number; digest: string; last_pulled_at: number; last_entitled_at: number | null };
  jobs: {
    id: Generated<number>;
    kind: string;
    subject: string;
    state: string;
    run_after: number;
    attempts: number;
    lease_owner: string | null;
    lease_until: number | null;
    last_error: string | null;
    created_at: number;
    enqueued_at: number;
  };
  webhook_deliveries: {
    id: string;
    webhook_id: number;
    event_id: number | null;
    event: string;
    payload: string;
    status: string;
    attempts: number;
    response_status: number | null;
    error: string | null;
    next_attempt_at: number;
    locked_until: number;
    last_attempt_at: number | null;
    delivered_at: number | null;
    created_at: number;
  };
}
