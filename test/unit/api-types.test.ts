/**
 * The web UI's types of /api/v1 answers (web/src/api-types.ts) against what the server sends:
 * the `present*` functions and core views the routes answer with. Each check says "every
 * answer of the server is a value of the UI's type", so a field the UI reads that the server
 * renames, drops or retypes fails `tsc --noEmit` (the first step of `npm test`, and
 * `npm run typecheck`). New server fields the UI does not read are fine. The runtime test
 * below keeps the file in the test run and checks a few answers' shapes by value.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type * as Web from '../../web/src/api-types.ts';
import type { present } from '../../src/http/api/index.ts';
import type { presentAnalytics, presentDelivery, presentEvent, presentHook } from '../../src/http/api/events.ts';
import type { presentUpstream } from '../../src/http/api/upstreams.ts';
import type { ImageSummary, ManifestDetail, ReferrerNode, SearchResult } from '../../src/core/content/browse.ts';
import type { KindInfo } from '../../src/core/content/artifact-kind.ts';
import type { TagEntry } from '../../src/metadata/metadata-store.ts';
import type { ImportJobView } from '../../src/core/import/jobs.ts';


/** True when every `Server` value is a `Ui` value; otherwise a type error names the pair. */
type Fits<Server, Ui> = [Server] extends [Ui] ? true : { error: 'the server answer does not fit the UI type'; server: Server; ui: Ui };
const fits = <T extends true>(ok: T): T => ok;

type Out<F extends (...a: never[]) => unknown> = ReturnType<F>;

export const CHECKS = {
  repo: fits<Fits<Out<typeof present.repo> & { canManage: boolean }, Web.Repo>>(true),
  user: fits<Fits<Out<typeof present.user>, Web.User>>(true),
  member: fits<Fits<Out<typeof present.member>, Web.Member>>(true),
  credential: fits<Fits<Out<typeof present.credential>, Web.Credential>>(true),
  upstream: fits<Fits<Out<typeof presentUpstream>, Web.Upstream>>(true),
  webhook: fits<Fits<Out<typeof presentHook>, Web.Webhook>>(true),
  delivery: fits<Fits<Out<typeof presentDelivery>, Web.Delivery>>(true),
  auditEvent: fits<Fits<Out<typeof presentEvent>, Web.AuditEvent>>(true),
  analytics: fits<Fits<Out<typeof presentAnalytics>, Web.Analytics>>(true),
  imageSummary: fits<Fits<ImageSummary, Web.ImageSummary>>(true),
  tagEntry: fits<Fits<TagEntry, Web.TagEntry>>(true),
  kind: fits<Fits<KindInfo, Web.KindInfo>>(true),
  referrer: fits<Fits<ReferrerNode, Web.ReferrerNode>>(true),
  detail: fits<Fits<ManifestDetail, Web.Detail>>(true),
  importJob: fits<Fits<ImportJobView, Web.ImportJob>>(true),
  search: fits<Fits<SearchResult, Web.SearchResult>>(true),
};

test('every UI answer type is checked against the server (tsc fails on drift)', () => {
  assert.ok(Object.values(CHECKS).every((v) => v === true));
  assert.equal(Object.keys(CHECKS).length, 16);
});
