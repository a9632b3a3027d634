import type { Readable } from 'node:stream';

/**
 * What a management API handler returns to answer with something other than JSON (e.g. a
 * streamed CSV export): the route wrapper sends it as is.
 */
export class RawResponse {
  constructor(
    readonly status: number,
    readonly contentType: string,
    readonly body: Readable | string | Buffer,
    readonly headers: Record<string, string> = {},
  ) {}
}
