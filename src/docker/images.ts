import { type Cmd, cmd, probe } from '../core/cmd.js';

/**
 * Pure builders for moving images between hosts without a registry:
 * `docker save` on one host streams a tar to `docker load` on another.
 */

/** The image's ID (`sha256:…`); fails with "No such image" when the host does not have it. */
export const imageInspectId = (ref: string): Cmd =>
  probe(['docker', 'image', 'inspect', '--format', '{{.Id}}', ref]);

/**
 * The images (with their tags) as one tar on stdout. It changes nothing on the
 * host, but it is not marked read-only: it reads every layer, so it runs only
 * during a real push, never in --dry-run.
 */
export const imageSave = (refs: readonly string[]): Cmd => {
  if (refs.length === 0) throw new TypeError('imageSave needs at least one image');
  return cmd(['docker', 'save', ...refs]);
};

/** Reads an image tar (from `docker save`) on stdin and stores its images and tags. */
export const imageLoad = (): Cmd => cmd(['docker', 'load']);
