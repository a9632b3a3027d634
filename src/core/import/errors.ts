/**
 * Why an import failed. Every message names the problem and where it is (the member, the
 * descriptor, the image), so that a user can fix the input without reading code.
 */
export type ImportErrorCode =
  /** Not a tar, a corrupt header, a malformed JSON document. */
  | 'BAD_ARCHIVE'
  /** The file ends early, or a member claims bytes beyond its end. */
  | 'TRUNCATED'
  /** A member name or link reaches outside the archive (`..`, absolute). */
  | 'UNSAFE_PATH'
  /** Neither index.json nor manifest.json, or a file they name is missing. */
  | 'MISSING_FILE'
  /** Content does not hash to the digest its descriptor (or the config's diff_ids) claims. */
  | 'DIGEST_MISMATCH'
  /** Content length differs from its descriptor. */
  | 'SIZE_MISMATCH'
  /** The destination or a name or tag derived from the archive is invalid or ambiguous. */
  | 'BAD_NAME'
  /** A format feature Berth does not import (e.g. a zstd layer in a docker-archive). */
  | 'UNSUPPORTED'
  /** The registry refused a request (status and its error message in the text). */
  | 'REGISTRY'
  /** Credentials missing or refused. */
  | 'AUTH'
  /** Larger than the server accepts (the archive, or what it decompresses to). */
  | 'TOO_LARGE'
  /** More imports at once than the server allows one user. */
  | 'TOO_MANY'
  /** Stopped by the caller. */
  | 'ABORTED';

export class ImportError extends Error {
  constructor(
    readonly code: ImportErrorCode,
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'ImportError';
  }
}
