/**
 * The S3 server of a test, with a bucket of its own:
 * - when `BERTH_TEST_S3_ENDPOINT` is set (`eval "$(test/infra/ceph.sh up)"`, as `.ci/run` does):
 *   Ceph's RADOS gateway at that endpoint, with BERTH_TEST_S3_ACCESS_KEY_ID /
 *   BERTH_TEST_S3_SECRET_ACCESS_KEY; each startS3() creates a fresh bucket and stop() empties
 *   (objects and multipart uploads) and removes it. A gateway that does not answer is an error,
 *   never a fallback.
 * - otherwise s3rver (npm), in this process, on loopback, with a fresh directory (quick local runs).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import S3rver from 's3rver';

export interface TestS3 {
  /** `ceph` (the RADOS gateway) or `s3rver`. */
  kind: 'ceph' | 's3rver';
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** A client for the bucket (path-style, static keys). */
  client(): S3Client;
  /** Keys of the objects in the bucket under `prefix`. */
  listKeys(prefix?: string): Promise<string[]>;
  /** Keys of the multipart uploads in progress in the bucket. */
  listMultipartUploads(): Promise<string[]>;
  stop(): Promise<void>;
}

/** The gateway selected by the environment, or undefined (s3rver then). */
export function gatewayFromEnv(): { endpoint: string; accessKeyId: string; secretAccessKey: string } | undefined {
  const endpoint = process.env.BERTH_TEST_S3_ENDPOINT;
  if (!endpoint) return undefined;
  const accessKeyId = process.env.BERTH_TEST_S3_ACCESS_KEY_ID;
  const secretAccessKey = process.env.BERTH_TEST_S3_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) {
    throw new Error('BERTH_TEST_S3_ENDPOINT is set but BERTH_TEST_S3_ACCESS_KEY_ID / BERTH_TEST_S3_SECRET_ACCESS_KEY are not (eval "$(test/infra/ceph.sh env)")');
  }
  return { endpoint, accessKeyId, secretAccessKey };
}

/**
 * For tests that only mean something against the real gateway (and may restart it): the
 * selected gateway and the cluster folder of test/infra/ceph.sh, or a loud error.
 */
export function requireGateway(): { endpoint: string; cephDir: string } {
  const gw = gatewayFromEnv();
  const cephDir = process.env.BERTH_TEST_CEPH_DIR;
  if (!gw || !cephDir) {
    throw new Error('this test needs the Ceph S3 gateway: run eval "$(test/infra/ceph.sh up)" first (sets BERTH_TEST_S3_ENDPOINT and BERTH_TEST_CEPH_DIR)');
  }
  return { endpoint: gw.endpoint, cephDir };
}

function clientFor(endpoint: string, accessKeyId: string, secretAccessKey: string): S3Client {
  return new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId, secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 1,
  });
}

function helpers(client: () => S3Client, bucket: string) {
  return {
    async listKeys(prefix = ''): Promise<string[]> {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const r = await client().send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
        for (const o of r.Contents ?? []) keys.push(o.Key!);
        token = r.IsTruncated ? r.NextContinuationToken : undefined;
      } while (token);
      return keys;
    },
    async listMultipartUploads(): Promise<string[]> {
      const r = await client().send(new ListMultipartUploadsCommand({ Bucket: bucket }));
      return (r.Uploads ?? []).map((u) => u.Key!);
    },
  };
}

export async function startS3(bucket = 'berth'): Promise<TestS3> {
  const gw = gatewayFromEnv();
  return gw ? startGatewayBucket(gw, bucket) : startS3rver(bucket);
}

async function startGatewayBucket(gw: { endpoint: string; accessKeyId: string; secretAccessKey: string }, prefix: string): Promise<TestS3> {
  const bucket = `${prefix}-${randomBytes(6).toString('hex')}`;
  const s3 = clientFor(gw.endpoint, gw.accessKeyId, gw.secretAccessKey);
  try {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }), { abortSignal: AbortSignal.timeout(15_000) });
  } catch (e) {
    s3.destroy();
    throw new Error(`the S3 gateway selected by BERTH_TEST_S3_ENDPOINT=${gw.endpoint} does not answer: ${(e as Error).message} (is test/infra/ceph.sh up?)`);
  }
  const h = helpers(() => s3, bucket);
  return {
    kind: 'ceph',
    endpoint: gw.endpoint,
    bucket,
    accessKeyId: gw.accessKeyId,
    secretAccessKey: gw.secretAccessKey,
    client: () => s3,
    ...h,
    async stop() {
      try {
        const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
        for (const u of uploads.Uploads ?? []) {
          await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key!, UploadId: u.UploadId! }));
        }
        for (;;) {
          const keys = await h.listKeys();
          if (keys.length === 0) break;
          for (let i = 0; i < keys.length; i += 1000) {
            await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })) } }));
          }
        }
        await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
      } finally {
        s3.destroy();
      }
    },
  };
}

async function startS3rver(bucket: string): Promise<TestS3> {
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-s3-'));
  const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: dir, configureBuckets: [{ name: bucket }] });
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  let s3: S3Client | undefined;
  const client = () => (s3 ??= clientFor(endpoint, 'S3RVER', 'S3RVER'));
  return {
    kind: 's3rver',
    endpoint,
    bucket,
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    client,
    ...helpers(client, bucket),
    async stop() {
      s3?.destroy();
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
