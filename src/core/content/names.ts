import { RegistryError } from '../errors.ts';

/**
 * Names on the wire are `OWNER/REPOSITORY/IMAGE[/MORE]` (DESIGN.md §2):
 * - OWNER: a user or organisation, `[a-z0-9][a-z0-9-]{0,38}`;
 * - REPOSITORY: the unit of tenancy, one path component of the OCI name grammar;
 * - IMAGE: one or more path components of the OCI name grammar.
 * The whole name matches the OCI distribution-spec `<name>` grammar and is at most 255 chars.
 */
export type { ImageName } from '../../metadata/metadata-store.ts';
import type { ImageName } from '../../metadata/metadata-store.ts';

const OWNER_RE = /^[a-z0-9][a-z0-9-]{0,38}$/;
/** One path component of the OCI distribution-spec name grammar. */
const COMPONENT_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
export const MAX_NAME_LENGTH = 255;

export function isValidComponent(s: string): boolean {
  return COMPONENT_RE.test(s);
}

export function isValidOwner(s: string): boolean {
  return OWNER_RE.test(s);
}

/** Valid names parsed lately: a pull parses its name in several places (auth, limits, policies). */
const parsedNames = new Map<string, ImageName>();
const MAX_PARSED_NAMES = 10_000;

/** Parses and validates a full image name, or throws NAME_INVALID naming the problem. */
export function parseImageName(full: string): ImageName {
  const hit = parsedNames.get(full);
  if (hit !== undefined) return hit;
  const parsed = Object.freeze(parseNewImageName(full));
  if (parsedNames.size >= MAX_PARSED_NAMES) parsedNames.clear();
  parsedNames.set(full, parsed);
  return parsed;
}

function parseNewImageName(full: string): ImageName {
  if (full.length === 0) throw new RegistryError('NAME_INVALID', 'repository name must not be empty');
  if (full.length > MAX_NAME_LENGTH) {
    throw new RegistryError('NAME_INVALID', `repository name must be at most ${MAX_NAME_LENGTH} characters`);
  }
  const parts = full.split('/');
  if (parts.length < 3) {
    throw new RegistryError(
      'NAME_INVALID',
      `"${full.slice(0, 100)}" has ${parts.length === 1 ? 'one part' : 'two parts'}: an image name on this registry is OWNER/REPOSITORY/IMAGE[/...], e.g. acme/prod/app`,
    );
  }
  const [owner, repository, ...rest] = parts as [string, string, ...string[]];
  if (!isValidOwner(owner)) {
    throw new RegistryError('NAME_INVALID', `invalid owner "${owner}": use lowercase letters, digits and "-" (max 39)`);
  }
  for (const c of [repository, ...rest]) {
    if (!isValidComponent(c)) {
      throw new RegistryError(
        'NAME_INVALID',
        `invalid name component "${c}": must match [a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*`,
      );
    }
  }
  return { full, owner, repository, image: rest.join('/') };
}

export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}
