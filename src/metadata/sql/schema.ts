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
  blobs: { digest: string; size: number; created_at: number };
  image_blobs: { image_id: number; digest: string; created_at: number };
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
  };
  manifest_refs: { manifest_id: number; child_digest: string; kind: string };
  tags: { image_id: number; name: string; manifest_id: number; updated_at: number };
  uploads: { id: string; image_id: number; started_at: number };
}
