import { type Kysely, type Migration, type MigrationProvider, Migrator, sql } from 'kysely';

export type Dialect = 'sqlite' | 'postgres';

/** Migrations in code, named so they sort in order. Never edit one that has shipped. */
function migrations(dialect: Dialect): Record<string, Migration> {
  const id = dialect === 'postgres' ? 'bigserial' : 'integer';
  const bytes = dialect === 'postgres' ? 'bytea' : 'blob';
  return {
    '0001_registry_core': {
      async up(db: Kysely<any>) {
        await db.schema
          .createTable('owners')
          .addColumn('id', sql.raw(id), (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
          .addColumn('name', 'text', (c) => c.notNull().unique())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('repositories')
          .addColumn('id', sql.raw(id), (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
          .addColumn('owner_id', 'bigint', (c) => c.notNull().references('owners.id').onDelete('cascade'))
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('visibility', 'text', (c) => c.notNull())
          .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addUniqueConstraint('repositories_owner_name', ['owner_id', 'name'])
          .execute();
        await db.schema
          .createTable('images')
          .addColumn('id', sql.raw(id), (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
          .addColumn('repository_id', 'bigint', (c) => c.notNull().references('repositories.id').onDelete('cascade'))
          .addColumn('name', 'text', (c) => c.notNull().unique())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('blobs')
          .addColumn('digest', 'text', (c) => c.primaryKey())
          .addColumn('size', 'bigint', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('image_blobs')
          .addColumn('image_id', 'bigint', (c) => c.notNull().references('images.id').onDelete('cascade'))
          .addColumn('digest', 'text', (c) => c.notNull().references('blobs.digest'))
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('image_blobs_pk', ['image_id', 'digest'])
          .execute();
        await db.schema.createIndex('image_blobs_digest').on('image_blobs').column('digest').execute();
        await db.schema
          .createTable('manifests')
          .addColumn('id', sql.raw(id), (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
          .addColumn('image_id', 'bigint', (c) => c.notNull().references('images.id').onDelete('cascade'))
          .addColumn('digest', 'text', (c) => c.notNull())
          .addColumn('media_type', 'text', (c) => c.notNull())
          .addColumn('artifact_type', 'text')
          .addColumn('subject_digest', 'text')
          .addColumn('config_digest', 'text')
          .addColumn('size', 'bigint', (c) => c.notNull())
          .addColumn('payload', sql.raw(bytes), (c) => c.notNull())
          .addColumn('annotations', 'text')
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addUniqueConstraint('manifests_image_digest', ['image_id', 'digest'])
          .execute();
        await db.schema.createIndex('manifests_subject').on('manifests').columns(['image_id', 'subject_digest']).execute();
        await db.schema
          .createTable('manifest_refs')
          .addColumn('manifest_id', 'bigint', (c) => c.notNull().references('manifests.id').onDelete('cascade'))
          .addColumn('child_digest', 'text', (c) => c.notNull())
          .addColumn('kind', 'text', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('manifest_refs_manifest').on('manifest_refs').column('manifest_id').execute();
        await db.schema.createIndex('manifest_refs_child').on('manifest_refs').column('child_digest').execute();
        await db.schema
          .createTable('tags')
          .addColumn('image_id', 'bigint', (c) => c.notNull().references('images.id').onDelete('cascade'))
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('manifest_id', 'bigint', (c) => c.notNull().references('manifests.id').onDelete('cascade'))
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('tags_pk', ['image_id', 'name'])
          .execute();
        await db.schema.createIndex('tags_manifest').on('tags').column('manifest_id').execute();
        await db.schema
          .createTable('uploads')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('image_id', 'bigint', (c) => c.notNull().references('images.id').onDelete('cascade'))
          .addColumn('started_at', 'bigint', (c) => c.notNull())
          .execute();
      },
    },
    '0002_tenancy_and_access': {
      async up(db: Kysely<any>) {
        const pk = (c: any) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey());
        await db.schema
          .createTable('users')
          .addColumn('id', sql.raw(id), pk)
          .addColumn('username', 'text', (c) => c.notNull().unique())
          .addColumn('owner_id', 'bigint', (c) => c.notNull().references('owners.id').onDelete('cascade'))
          .addColumn('password_hash', 'text')
          .addColumn('site_admin', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('email', 'text')
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('memberships')
          .addColumn('id', sql.raw(id), pk)
          .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.id').onDelete('cascade'))
          .addColumn('owner_id', 'bigint', (c) => c.references('owners.id').onDelete('cascade'))
          .addColumn('repository_id', 'bigint', (c) => c.references('repositories.id').onDelete('cascade'))
          .addColumn('role', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('memberships_user').on('memberships').column('user_id').execute();
        await db.schema.createIndex('memberships_owner').on('memberships').columns(['owner_id', 'user_id']).execute();
        await db.schema.createIndex('memberships_repository').on('memberships').columns(['repository_id', 'user_id']).execute();
        await db.schema
          .createTable('credentials')
          .addColumn('id', sql.raw(id), pk)
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('user_id', 'bigint', (c) => c.references('users.id').onDelete('cascade'))
          .addColumn('repository_id', 'bigint', (c) => c.references('repositories.id').onDelete('cascade'))
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('prefix', 'text', (c) => c.notNull())
          .addColumn('secret_hash', 'text', (c) => c.notNull().unique())
          .addColumn('expires_at', 'bigint')
          .addColumn('download_limit', 'bigint')
          .addColumn('download_count', 'bigint', (c) => c.notNull().defaultTo(0))
          .addColumn('revoked_at', 'bigint')
          .addColumn('last_used_at', 'bigint')
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('credentials_user').on('credentials').column('user_id').execute();
        await db.schema.createIndex('credentials_repository').on('credentials').column('repository_id').execute();
        await db.schema
          .createTable('settings')
          .addColumn('key', 'text', (c) => c.primaryKey())
          .addColumn('value', 'text', (c) => c.notNull())
          .execute();
      },
    },
    '0003_events_and_webhooks': {
      async up(db: Kysely<any>) {
        const pk = (c: any) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey());
        // Events name their repository and image as text, not by foreign key: the audit log
        // outlives what it describes.
        await db.schema
          .createTable('events')
          .addColumn('id', sql.raw(id), pk)
          .addColumn('time', 'bigint', (c) => c.notNull())
          .addColumn('action', 'text', (c) => c.notNull())
          .addColumn('actor_kind', 'text', (c) => c.notNull())
          .addColumn('actor', 'text', (c) => c.notNull())
          .addColumn('credential_id', 'bigint')
          .addColumn('repository', 'text')
          .addColumn('image', 'text')
          .addColumn('reference', 'text')
          .addColumn('digest', 'text')
          .addColumn('client_ip', 'text')
          .addColumn('user_agent', 'text')
          .addColumn('bytes', 'bigint')
          .addColumn('status', 'integer', (c) => c.notNull())
          .addColumn('detail', 'text')
          .execute();
        await db.schema.createIndex('events_time').on('events').columns(['time', 'id']).execute();
        await db.schema.createIndex('events_repository_time').on('events').columns(['repository', 'time', 'id']).execute();
        await db.schema.createIndex('events_actor_time').on('events').columns(['actor', 'time', 'id']).execute();
        await db.schema
          .createTable('webhooks')
          .addColumn('id', sql.raw(id), pk)
          .addColumn('repository_id', 'bigint', (c) => c.notNull().references('repositories.id').onDelete('cascade'))
          .addColumn('url', 'text', (c) => c.notNull())
          .addColumn('secret', 'text', (c) => c.notNull())
          .addColumn('events', 'text', (c) => c.notNull())
          .addColumn('active', 'integer', (c) => c.notNull().defaultTo(1))
          .addColumn('created_by', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('webhooks_repository').on('webhooks').column('repository_id').execute();
        await db.schema
          .createTable('webhook_deliveries')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('webhook_id', 'bigint', (c) => c.notNull().references('webhooks.id').onDelete('cascade'))
          .addColumn('event_id', 'bigint')
          .addColumn('event', 'text', (c) => c.notNull())
          .addColumn('payload', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('response_status', 'integer')
          .addColumn('error', 'text')
          .addColumn('next_attempt_at', 'bigint', (c) => c.notNull())
          .addColumn('locked_until', 'bigint', (c) => c.notNull().defaultTo(0))
          .addColumn('last_attempt_at', 'bigint')
          .addColumn('delivered_at', 'bigint')
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('webhook_deliveries_webhook').on('webhook_deliveries').columns(['webhook_id', 'created_at']).execute();
        await db.schema.createIndex('webhook_deliveries_due').on('webhook_deliveries').columns(['status', 'next_attempt_at']).execute();
        await db.schema.createIndex('webhook_deliveries_created').on('webhook_deliveries').column('created_at').execute();
      },
    },
    '0004_upstreams': {
      async up(db: Kysely<any>) {
        await db.schema
          .createTable('upstreams')
          .addColumn('id', sql.raw(id), (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
          .addColumn('repository_id', 'bigint', (c) => c.notNull().references('repositories.id').onDelete('cascade'))
          .addColumn('url', 'text', (c) => c.notNull())
          .addColumn('username', 'text')
          .addColumn('password_enc', 'text')
          .addColumn('priority', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('cache', 'integer', (c) => c.notNull().defaultTo(1))
          .addColumn('prefix', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('remote_prefix', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('upstreams_repository').on('upstreams').columns(['repository_id', 'priority']).execute();
        await db.schema.alterTable('manifests').addColumn('cached', 'integer', (c) => c.notNull().defaultTo(0)).execute();
        await db.schema.alterTable('image_blobs').addColumn('cached', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      },
    },
    '0005_login_failures': {
      async up(db: Kysely<any>) {
        // Failed-login counters shared by every node (docs/security.md): key = a hash of
        // (source, username) or of the username alone.
        await db.schema
          .createTable('login_failures')
          .addColumn('key', 'text', (c) => c.primaryKey())
          .addColumn('failures', 'integer', (c) => c.notNull())
          .addColumn('since', 'bigint', (c) => c.notNull())
          .addColumn('last_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('login_failures_last_at').on('login_failures').column('last_at').execute();
      },
    },
    '0006_upload_session_owner': {
      async up(db: Kysely<any>) {
        // Who opened each upload session, so open sessions can be capped per user.
        await db.schema.alterTable('uploads').addColumn('started_by', 'text').execute();
        await db.schema.createIndex('uploads_started_by').on('uploads').column('started_by').execute();
        await db.schema.createIndex('uploads_image').on('uploads').column('image_id').execute();
      },
    },
    '0007_jobs': {
      async up(db: Kysely<any>) {
        // The one durable job queue (DESIGN.md §10): one row per (kind, subject).
        await db.schema
          .createTable('jobs')
          .addColumn('id', sql.raw(id), (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('subject', 'text', (c) => c.notNull())
          .addColumn('state', 'text', (c) => c.notNull())
          .addColumn('run_after', 'bigint', (c) => c.notNull())
          .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('lease_owner', 'text')
          .addColumn('lease_until', 'bigint')
          .addColumn('last_error', 'text')
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('enqueued_at', 'bigint', (c) => c.notNull())
          .addUniqueConstraint('jobs_kind_subject', ['kind', 'subject'])
          .execute();
        await db.schema.createIndex('jobs_due').on('jobs').columns(['state', 'run_after']).execute();
      },
    },
    '0007a_gc': {
      async up(db: Kysely<any>) {
        // Online garbage collection (docs/lifecycle.md): a blob is live, being deleted, or
        // gone (a tombstone keeping its last generation, so a re-upload takes the next one).
        await db.schema.alterTable('blobs').addColumn('state', 'text', (c) => c.notNull().defaultTo('live')).execute();
        await db.schema.alterTable('blobs').addColumn('generation', 'integer', (c) => c.notNull().defaultTo(0)).execute();
        await db.schema.alterTable('blobs').addColumn('last_used_at', 'bigint', (c) => c.notNull().defaultTo(0)).execute();
        await db.schema.createIndex('blobs_state').on('blobs').columns(['state', 'last_used_at']).execute();
      },
    },
    '0007b_repository_lifecycle': {
      async up(db: Kysely<any>) {
        // Immutable tag patterns and storage quotas (docs/lifecycle.md).
        await db.schema
          .createTable('repository_lifecycle')
          .addColumn('repository_id', 'bigint', (c) => c.primaryKey().references('repositories.id').onDelete('cascade'))
          .addColumn('immutable_tags', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('quota_bytes', 'bigint')
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('owner_lifecycle')
          .addColumn('owner_id', 'bigint', (c) => c.primaryKey().references('owners.id').onDelete('cascade'))
          .addColumn('quota_bytes', 'bigint')
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .execute();
      },
    },
    '0007c_retention': {
      async up(db: Kysely<any>) {
        // Retention rules of a repository, as validated JSON (docs/lifecycle.md).
        await db.schema.alterTable('repository_lifecycle').addColumn('retention', 'text').execute();
      },
    },
    '0008_sbom': {
      async up(db: Kysely<any>) {
        // SBOM on push (docs/supply-chain.md). What each layer adds and deletes, once per layer
        // digest (a base layer shared by many images is read once); the combined inventory of
        // each image manifest (global by digest, read by the vulnerability matcher); and the
        // per-repository switch (no row: on).
        await db.schema
          .createTable('layer_inventories')
          .addColumn('digest', 'text', (c) => c.primaryKey())
          .addColumn('data', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('image_inventories')
          .addColumn('manifest_digest', 'text', (c) => c.primaryKey())
          .addColumn('data', 'text', (c) => c.notNull())
          .addColumn('package_count', 'integer', (c) => c.notNull())
          .addColumn('generated_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('repository_sbom')
          .addColumn('repository_id', 'bigint', (c) => c.primaryKey().references('repositories.id').onDelete('cascade'))
          .addColumn('enabled', 'integer', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .execute();
      },
    },
    '0009_vulns': {
      async up(db: Kysely<any>) {
        // The vulnerability database (docs/vulnerabilities.md): OSV records as Berth keeps them,
        // indexed by the (ecosystem, package) pairs they affect; one state row (its version,
        // "as of", the last import); reports per image manifest digest; per-repository pull
        // policies (a generation bumped by every change a verdict depends on) and exceptions.
        await db.schema
          .createTable('vuln_records')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('modified', 'text', (c) => c.notNull())
          .addColumn('data', 'text', (c) => c.notNull())
          .addColumn('imported_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('vuln_packages')
          .addColumn('ecosystem', 'text', (c) => c.notNull())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('record_id', 'text', (c) => c.notNull().references('vuln_records.id').onDelete('cascade'))
          .addPrimaryKeyConstraint('vuln_packages_pk', ['ecosystem', 'name', 'record_id'])
          .execute();
        await db.schema.createIndex('vuln_packages_record').on('vuln_packages').column('record_id').execute();
        await db.schema
          .createTable('vuln_state')
          .addColumn('id', 'integer', (c) => c.primaryKey())
          .addColumn('version', 'bigint', (c) => c.notNull())
          .addColumn('as_of', 'bigint')
          .addColumn('imported_at', 'bigint')
          .addColumn('source', 'text')
          .addColumn('refreshed_at', 'bigint')
          .addColumn('last_error', 'text')
          .execute();
        await db.schema
          .createTable('vuln_reports')
          .addColumn('manifest_digest', 'text', (c) => c.primaryKey())
          .addColumn('scanned_at', 'bigint', (c) => c.notNull())
          .addColumn('db_version', 'bigint', (c) => c.notNull())
          .addColumn('db_as_of', 'bigint')
          .addColumn('summary', 'text', (c) => c.notNull())
          .addColumn('data', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('vuln_policies')
          .addColumn('repository_id', 'bigint', (c) => c.primaryKey().references('repositories.id').onDelete('cascade'))
          .addColumn('deny_severity', 'text', (c) => c.notNull())
          .addColumn('fixable_only', 'integer', (c) => c.notNull())
          .addColumn('block_until_scanned', 'integer', (c) => c.notNull())
          .addColumn('block_since', 'bigint')
          .addColumn('generation', 'bigint', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('vuln_exceptions')
          .addColumn('repository_id', 'bigint', (c) => c.notNull().references('repositories.id').onDelete('cascade'))
          .addColumn('vuln_id', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'bigint', (c) => c.notNull())
          .addColumn('reason', 'text', (c) => c.notNull())
          .addColumn('created_by', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('vuln_exceptions_pk', ['repository_id', 'vuln_id'])
          .execute();
        // Which repositories hold a manifest digest: a stored report bumps their policies.
        await db.schema.createIndex('vuln_manifests_digest').on('manifests').column('digest').execute();
      },
    },
    '0010_signing': {
      async up(db: Kysely<any>) {
        // Repository signing (docs/signing.md). Keys: the repository's own (private key sealed
        // under the key-encryption key; one current, older ones kept for verification) and
        // public keys an owner trusts. At most one current repository key per repository.
        await db.schema
          .createTable('signing_keys')
          .addColumn('id', sql.raw(id), (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
          .addColumn('repository_id', 'bigint', (c) => c.notNull().references('repositories.id').onDelete('cascade'))
          .addColumn('key_id', 'text', (c) => c.notNull())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('name', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('public_key', 'text', (c) => c.notNull())
          .addColumn('private_key', 'text')
          .addColumn('current', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('retired_at', 'bigint')
          .addUniqueConstraint('signing_keys_repository_key', ['repository_id', 'key_id'])
          .execute();
        await sql`create unique index signing_keys_current on signing_keys (repository_id) where current = 1`.execute(db);
        // Settings and the change counter a pull policy's version is read from (bumped on any
        // change of keys, settings or signatures in the repository, by every node).
        await db.schema
          .createTable('signing_settings')
          .addColumn('repository_id', 'bigint', (c) => c.primaryKey().references('repositories.id').onDelete('cascade'))
          .addColumn('sign_on_push', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('require_signature', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('version', 'bigint', (c) => c.notNull().defaultTo(0))
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .execute();
        // Which key signed what: one row per (image, manifest digest, key) Berth signed.
        await db.schema
          .createTable('signing_records')
          .addColumn('image_id', 'bigint', (c) => c.notNull().references('images.id').onDelete('cascade'))
          .addColumn('digest', 'text', (c) => c.notNull())
          .addColumn('key_id', 'text', (c) => c.notNull())
          .addColumn('signature_digest', 'text', (c) => c.notNull())
          .addColumn('referrer_digest', 'text', (c) => c.notNull())
          .addColumn('signed_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('signing_records_pk', ['image_id', 'digest', 'key_id'])
          .execute();
      },
    },
    '0011_domains': {
      async up(db: Kysely<any>) {
        // Custom domains (docs/domains.md): a host name → an owner or one repository; the
        // certificate served for it by SNI, its private key sealed with the keyring.
        await db.schema
          .createTable('domains')
          .addColumn('host', 'text', (c) => c.primaryKey())
          .addColumn('owner_id', 'bigint', (c) => c.notNull().references('owners.id').onDelete('cascade'))
          .addColumn('repository_id', 'bigint', (c) => c.references('repositories.id').onDelete('cascade'))
          .addColumn('mirror', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('cert_pem', 'text')
          .addColumn('key_sealed', 'text')
          .addColumn('cert_expires_at', 'bigint')
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('domains_owner').on('domains').column('owner_id').execute();
      },
    },
    '0012_rate_limits': {
      async up(db: Kysely<any>) {
        // Request and byte limits (docs/limits.md). `scope` names what a row limits: `anonymous`,
        // a kind's default (`user`, `token`, `repository`) or one subject (`user:12`); the
        // subject's own column cascades its deletion.
        await db.schema
          .createTable('rate_limits')
          .addColumn('scope', 'text', (c) => c.primaryKey())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('user_id', 'bigint', (c) => c.references('users.id').onDelete('cascade'))
          .addColumn('credential_id', 'bigint', (c) => c.references('credentials.id').onDelete('cascade'))
          .addColumn('repository_id', 'bigint', (c) => c.references('repositories.id').onDelete('cascade'))
          .addColumn('requests_per_minute', 'bigint')
          .addColumn('bytes_per_day', 'bigint')
          // Set by a site administrator: only site administrators may change or remove it.
          .addColumn('site_admin', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .execute();
        // The shared counters on PostgreSQL (rate-limiter-flexible's RateLimiterPostgres layout,
        // with bigint points: a day's bytes pass 2^31; text keys: `r:` + a 255-character name).
        if (dialect === 'postgres') {
          await db.schema
            .createTable('rate_limit_counters')
            .addColumn('key', 'text', (c) => c.primaryKey())
            .addColumn('points', 'bigint', (c) => c.notNull().defaultTo(0))
            .addColumn('expire', 'bigint')
            .execute();
        }
      },
    },
    '0013_lifecycle_more': {
      async up(db: Kysely<any>) {
        // Retention rules an owner's repositories inherit (docs/lifecycle.md).
        await db.schema.alterTable('owner_lifecycle').addColumn('retention', 'text').execute();
        // When each manifest of an image was last pulled (any pull, and with an entitlement
        // token): retention's pulledWithin / pulledByEntitlementWithin read this, not the events
        // table, so a plan costs one indexed read per image whatever the pull volume.
        await db.schema
          .createTable('manifest_pulls')
          .addColumn('image_id', 'bigint', (c) => c.notNull().references('images.id').onDelete('cascade'))
          .addColumn('digest', 'text', (c) => c.notNull())
          .addColumn('last_pulled_at', 'bigint', (c) => c.notNull())
          .addColumn('last_entitled_at', 'bigint')
          .addPrimaryKeyConstraint('manifest_pulls_pk', ['image_id', 'digest'])
          .execute();
        // Seeded from the pulls the event log still holds, so rules set right after an upgrade
        // do not take every image for never pulled.
        await sql`
          insert into manifest_pulls (image_id, digest, last_pulled_at, last_entitled_at)
          select images.id, events.digest, max(events.time),
                 max(case when events.actor_kind = 'entitlement' then events.time end)
          from events inner join images on images.name = events.image
          where events.action = 'pull' and events.status < 400 and events.digest is not null
          group by images.id, events.digest`.execute(db);
      },
    },
  };
}

/**
 * On PostgreSQL the migration tables live in the connection's current schema, named
 * explicitly: Kysely otherwise looks for them in every schema of the database, so a second
 * Berth (or test) in another schema of the same database would make it skip creating them.
 */
export async function createMigrator(db: Kysely<any>, dialect: Dialect): Promise<Migrator> {
  const provider: MigrationProvider = { getMigrations: async () => migrations(dialect) };
  let migrationTableSchema: string | undefined;
  if (dialect === 'postgres') {
    const { rows } = await sql<{ schema: string }>`select current_schema() as schema`.execute(db);
    migrationTableSchema = rows[0]?.schema;
  }
  return new Migrator({
    db,
    provider,
    migrationTableName: 'berth_migrations',
    migrationLockTableName: 'berth_migrations_lock',
    ...(migrationTableSchema ? { migrationTableSchema } : {}),
  });
}

export interface MigrationStatus {
  applied: string[];
  pending: string[];
  /** Applied by a newer Berth: this version must not run against the database. */
  unknown: string[];
}

export async function migrationStatus(db: Kysely<any>, dialect: Dialect): Promise<MigrationStatus> {
  const known = Object.keys(migrations(dialect)).sort();
  let applied: string[] = [];
  try {
    const rows = await db.selectFrom('berth_migrations').select('name').execute();
    applied = rows.map((r: { name: string }) => r.name).sort();
  } catch {
    applied = []; // no table yet: an empty database
  }
  const done = new Set(applied);
  return {
    applied,
    pending: known.filter((m) => !done.has(m)),
    unknown: applied.filter((m) => !known.includes(m)),
  };
}

function newerError(unknown: string[]): Error {
  return new Error(`the database was migrated by a newer Berth (${unknown.join(', ')}): upgrade Berth before running it against this database`);
}

/** Applies pending migrations; refuses a database migrated by a newer Berth. */
export async function migrateToLatest(db: Kysely<any>, dialect: Dialect): Promise<string[]> {
  const before = await migrationStatus(db, dialect);
  if (before.unknown.length) throw newerError(before.unknown);
  const { error, results } = await (await createMigrator(db, dialect)).migrateToLatest();
  for (const r of results ?? []) {
    if (r.status === 'Error') throw new Error(`migration ${r.migrationName} failed: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/** For start-up without migrating: the schema must be exactly this version's. */
export async function requireCurrentSchema(db: Kysely<any>, dialect: Dialect): Promise<void> {
  const st = await migrationStatus(db, dialect);
  if (st.unknown.length) throw newerError(st.unknown);
  if (st.pending.length) throw new Error(`the database needs migrations ${st.pending.join(', ')}: run \`berth migrate\` first`);
}
