/**
 * Berth's S3 driver against Ceph's RADOS gateway (test/infra/ceph.sh), on what only a real
 * gateway shows: the AWS SDK's default request checksums (aws-chunked bodies with a trailing
 * CRC) get `411 MissingContentLength` from the gateway on every streamed PutObject/UploadPart;
 * the driver's `requestChecksumCalculation: 'WHEN_REQUIRED'` is what makes uploads work.
 * Needs the gateway (fails loudly without it).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { S3Client } from '@aws-sdk/client-s3';
import { S3BlobStore } from '../../src/storage/s3.ts';
import { requireGateway, startS3, type TestS3 } from '../helpers/s3.ts';

let s3: TestS3;
before(async () => {
  requireGateway();
  s3 = await startS3('berth-checksums');
});
after(async () => {
  await s3?.stop();
});

const MiB = 1024 * 1024;

async function* chunks(data: Buffer): AsyncIterable<Buffer> {
  for (let i = 0; i < data.length; i += 64 * 1024) yield data.subarray(i, i + 64 * 1024);
}

function options() {
  return {
    bucket: s3.bucket,
    prefix: `t-${randomUUID()}/`,
    endpoint: s3.endpoint,
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
    partSize: 5 * MiB,
  };
}

test('the driver streams a multi-part upload to the gateway and reads it back (WHEN_REQUIRED checksums)', async () => {
  const store = new S3BlobStore(options());
  const data = randomBytes(11 * MiB + 123); // two full parts and a tail
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  const id = randomUUID();
  await store.createUpload(id);
  assert.equal(await store.appendUpload(id, 0, chunks(data)), data.length);
  await store.sealUpload(id);
  await store.commitUpload(id, digest);
  const back = createHash('sha256');
  for await (const c of await store.read(digest)) back.update(c as Buffer);
  assert.equal(`sha256:${back.digest('hex')}`, digest);
  await store.delete(digest);
});

test("the SDK's default checksums make the gateway answer 411 MissingContentLength (why the setting exists)", async () => {
  const o = options();
  const sdkDefaults = new S3Client({
    region: 'us-east-1',
    endpoint: o.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: o.accessKeyId, secretAccessKey: o.secretAccessKey },
    maxAttempts: 1,
  });
  const store = new S3BlobStore(o, sdkDefaults);
  const id = randomUUID();
  await store.createUpload(id);
  const err = await store.appendUpload(id, 0, chunks(randomBytes(6 * MiB))).then(
    () => undefined,
    (e: unknown) => e as { name?: string; $metadata?: { httpStatusCode?: number } },
  );
  assert.ok(err, 'the gateway accepted an aws-chunked upload: the WHEN_REQUIRED setting may no longer be needed');
  assert.equal(err.$metadata?.httpStatusCode, 411);
  assert.equal(err.name, 'MissingContentLength');
  await store.removeUpload(id);
  sdkDefaults.destroy();
});
