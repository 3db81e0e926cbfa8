import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { fromSystemError } from './errors.js';

/** Make a directory entry change (create, rename, unlink) durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fd = await fsp.open(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    await fd.sync();
  } finally {
    await fd.close();
  }
}

/**
 * Replace a small file whole: tmp file + fsync + rename + directory fsync, so a crash
 * leaves the old or the new content, never a mix. State, manifests and bitmaps use it.
 */
export async function replaceFileAtomic(file: string, body: Buffer | string, mode = 0o644): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    const fh = await fsp.open(tmp, 'w', mode);
    try {
      await fh.writeFile(body);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, file);
    await fsyncDir(path.dirname(file));
  } catch (err) {
    throw fromSystemError(err, `write ${file}`);
  }
}

/** Cut a file to `size` and make the new length durable (repair of a torn tail). */
export async function truncateDurably(file: string, size: number): Promise<void> {
  const fh = await fsp.open(file, 'r+');
  try {
    await fh.truncate(size);
    await fh.sync();
  } finally {
    await fh.close();
  }
}
