import fsp from 'node:fs/promises';
import path from 'node:path';
import { ErrorCodes, RewindError, fromSystemError } from '../../core/errors.js';

/**
 * Where a restore job may write. The HTTP API asks for no token, so a path from a request
 * must never reach outside the one directory the operator gave (`--restore-dir`): not by
 * `..`, not through a symlinked directory, and never over an existing file (the target is
 * created exclusively; a symlink planted at the name is an existing file too).
 */
export interface RestoreTarget {
  /** The file the finished image is linked to. */
  file: string;
  /** Written first, then hard-linked to `file`, so `file` only ever holds a whole image. */
  partial: string;
}

export const PARTIAL_SUFFIX = '.partial';

/** The configured directory, resolved through symlinks once (create it if missing). */
export async function prepareRestoreDir(dir: string): Promise<string> {
  if (!path.isAbsolute(dir)) dir = path.resolve(dir);
  try {
    await fsp.mkdir(dir, { recursive: true });
    const real = await fsp.realpath(dir);
    if (!(await fsp.stat(real)).isDirectory()) throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `--restore-dir ${dir} is not a directory`);
    return real;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTDIR') throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `--restore-dir ${dir} is not a directory; give a directory (it is created if missing)`, { cause: err });
    throw fromSystemError(err, `--restore-dir ${dir}`);
  }
}

function inside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel !== '' && !rel.startsWith('..' + path.sep) && rel !== '..' && !path.isAbsolute(rel);
}

/**
 * Check a requested target path against the restore directory `root` (already real, see
 * prepareRestoreDir). Refusals, each with a stable code:
 * - no restore directory configured: UNSUPPORTED (501);
 * - not a string, not absolute, a NUL byte, ending in a separator or `.partial`: INVALID_ARGUMENT (400);
 * - outside the restore directory (also via a symlinked parent): PERMISSION_DENIED (403);
 * - the parent directory missing: NOT_FOUND (404);
 * - the file (or its `.partial`) already there: ALREADY_EXISTS (409).
 */
export async function checkRestoreTarget(root: string | undefined, requested: unknown): Promise<RestoreTarget> {
  if (root === undefined) {
    throw new RewindError(ErrorCodes.UNSUPPORTED, 'this collector takes no restore jobs: start it with --restore-dir DIR to let restores write image files under DIR', { details: { reason: 'no-restore-dir' } });
  }
  const details = { restoreDir: root, path: requested };
  if (typeof requested !== 'string' || requested === '') {
    throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `body.path is required: an absolute file path inside the restore directory ${root}`, { details: { ...details, reason: 'path-missing' } });
  }
  if (requested.includes('\0') || !path.isAbsolute(requested)) {
    throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `path ${JSON.stringify(requested)} is not absolute; give a full path inside the restore directory ${root}, e.g. ${path.join(root, 'restored.img')}`, { details: { ...details, reason: 'path-not-absolute' } });
  }
  if (requested.endsWith(path.sep) || requested.endsWith(PARTIAL_SUFFIX)) {
    throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `path ${requested} must name a file (not a directory, not ending in ${PARTIAL_SUFFIX}: restores write that name while they run)`, { details: { ...details, reason: 'path-not-a-file-name' } });
  }
  const wanted = path.resolve(requested);
  if (wanted === root) {
    throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `path ${requested} is the restore directory itself; name a file inside it, e.g. ${path.join(root, 'restored.img')}`, { details: { ...details, reason: 'path-not-a-file-name' } });
  }
  if (!inside(root, wanted)) {
    throw new RewindError(ErrorCodes.PERMISSION_DENIED, `path ${requested} is outside the restore directory ${root}; restores write only under it (--restore-dir)`, { details: { ...details, reason: 'path-outside-restore-dir' } });
  }
  // The parent as the kernel will resolve it: a symlinked directory inside root may lead out.
  let parent: string;
  try {
    parent = await fsp.realpath(path.dirname(wanted));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new RewindError(ErrorCodes.NOT_FOUND, `directory ${path.dirname(wanted)} does not exist; create it inside ${root} or write to ${root} itself`, { details: { ...details, reason: 'parent-missing' } });
    }
    throw fromSystemError(err, `restore path ${requested}`);
  }
  if (parent !== root && !inside(root, parent)) {
    throw new RewindError(ErrorCodes.PERMISSION_DENIED, `path ${requested} leads outside the restore directory ${root} (through a symlink); restores write only under it`, { details: { ...details, reason: 'path-outside-restore-dir' } });
  }
  const file = path.join(parent, path.basename(wanted));
  const partial = file + PARTIAL_SUFFIX;
  for (const p of [file, partial]) {
    const exists = await fsp.lstat(p).then(() => true, (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return false;
      throw fromSystemError(err, `restore path ${p}`);
    });
    if (exists) {
      const what = p === file ? 'already exists' : 'is being written by another restore (or one that failed left it)';
      throw new RewindError(ErrorCodes.ALREADY_EXISTS, `${p} ${what}; restores never overwrite: pick another file name or remove it`, { details: { ...details, reason: 'target-exists', existing: p } });
    }
  }
  return { file, partial };
}
