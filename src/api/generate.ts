/**
 * Writes crds/ from src/api (run by `npm run gen:crds`). Files of ours that no kind
 * produces any more are removed, so a renamed kind leaves no stale CRD behind.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { GROUP } from './shared.js';
import { renderCrdFiles } from './index.js';

export const CRDS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'crds');

export function generate(dir = CRDS_DIR): string[] {
  const files = renderCrdFiles();
  fs.mkdirSync(dir, { recursive: true });
  for (const old of fs.readdirSync(dir)) {
    if (old.endsWith(`.${GROUP}.yaml`) && !files.has(old)) fs.rmSync(path.join(dir, old));
  }
  for (const [name, text] of files) fs.writeFileSync(path.join(dir, name), text);
  return [...files.keys()];
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const f of generate()) process.stdout.write(`wrote crds/${f}\n`);
}
