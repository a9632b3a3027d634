/** What an archive holds, once read: blobs to push, manifests to put, images and their names. */

export type ArchiveFormat = 'oci-layout' | 'oci-archive' | 'docker-archive' | 'docker-oci-archive';

/** A blob to push: streamed from a member of the source, or small bytes held (configs). */
export interface PlannedBlob {
  digest: string;
  size: number;
  mediaType: string;
  /** Member of the source holding the bytes. */
  member?: string;
  /** Or the bytes themselves (configs built or read whole). */
  data?: Buffer;
  /** Or a temporary file holding them (a layer compressed for the push, compress.ts). */
  file?: string;
  /** Says what it is in messages, e.g. `layer 2 of docker.io/library/alpine:3.19 (3f1c….tar)`. */
  label: string;
  /** What claims the digest, for a mismatch message (default: "its descriptor"). */
  claim?: string;
}

/** A manifest or index to put, by its exact bytes. */
export interface PlannedManifest {
  digest: string;
  mediaType: string;
  bytes: Buffer;
  /** Digests of the blobs it needs in the image (config, distributable layers). */
  blobs: string[];
  /** Digests of the child manifests it needs in the image (index entries). */
  children: string[];
}

/** A name an image carried in the archive (`RepoTags`, `io.containerd.image.name`, `ref.name`). */
export interface ArchiveName {
  /** IMAGE part derived from it (the last path component of the repository), if any. */
  image?: string;
  tag?: string;
  /** The text as written, for messages. */
  raw: string;
}

/** One image (a manifest or an index) the archive offers at its top level. */
export interface ArchiveImage {
  /** Digest of its manifest or index. */
  digest: string;
  mediaType: string;
  names: ArchiveName[];
  /** For messages, e.g. `index.json manifests[1]` or `manifest.json[0]`. */
  where: string;
}

export interface ArchiveContent {
  format: ArchiveFormat;
  blobs: Map<string, PlannedBlob>;
  manifests: Map<string, PlannedManifest>;
  images: ArchiveImage[];
  warnings: string[];
}
