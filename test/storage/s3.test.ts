import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before } from 'node:test';
import { S3BlobStore } from '../../src/storage/s3.ts';
import { runStorageSuite } from '../suites/storage-suite.ts';
import { startS3, type TestS3 } from '../helpers/s3.ts';

let s3: TestS3;
before(async () => {
  s3 = await startS3();
});
after(async () => {
  await s3?.stop();
});

// A small part size (S3's minimum) so the suite's uploads span several parts and a tail.
runStorageSuite('s3', async () => {
  const store = new S3BlobStore({
    bucket: s3.bucket,
    prefix: `t-${randomUUID()}/`,
    endpoint: s3.endpoint,
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
    partSize: 5 * 1024 * 1024,
  });
  return {
    store,
    async cleanup() {
      const left = await store.listKeys((store as unknown as { prefix: string }).prefix);
      assert.deepEqual(left, [], 'the test left objects behind');
    },
  };
});
