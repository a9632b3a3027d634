/**
 * The record shapes that cross from the stores through core to the HTTP layer. The HTTP layer
 * imports them from here, never from `metadata/` or `storage/` (DESIGN §1: arrows point down).
 */
export type {
  CredentialRecord,
  MembershipRecord,
  OwnerRecord,
  RepositoryRecord,
  UpstreamRecord,
  UserRecord,
} from '../metadata/access-store.ts';
export type { DeliveryRecord, EventRecord, NewEvent } from '../metadata/event-store.ts';
export type { BlobReader, ByteRange } from '../storage/blob-store.ts';
