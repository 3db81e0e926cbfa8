import fsp from 'node:fs/promises';
import { replaceFileAtomic } from '../../core/atomic-file.js';
import { fromSystemError } from '../../core/errors.js';

/** Replace `file` with `value` as JSON (bigints as strings), atomically. */
export function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  return replaceFileAtomic(file, JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n');
}

export async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await fsp.readFile(file, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fromSystemError(err, `read ${file}`);
  }
}
