import fs from 'node:fs/promises';
import { ErrorCodes, RewindError } from '../core/errors.js';

/**
 * A token from a file (a mounted Kubernetes Secret key, or one the operator wrote): the
 * whole file, surrounding whitespace trimmed. Read from a file, never a flag, so it does
 * not show in `ps` or shell history.
 */
export async function readSecretFile(file: string, flag: string): Promise<string> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `${flag} ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); give a file that holds the token`, { cause: err });
  }
  const token = text.trim();
  if (token === '') throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `${flag} ${file} is empty; write the token into it`);
  return token;
}
