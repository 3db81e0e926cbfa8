import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { NODE_FLAGS } from './node-flags.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'rewind');

describe('node flags', () => {
  it('bin/rewind starts node with exactly NODE_FLAGS', () => {
    const first = fs.readFileSync(BIN, 'utf8').split('\n')[0]!;
    expect(first.startsWith('#!/usr/bin/env -S node')).toBe(true);
    expect(first.replace('#!/usr/bin/env -S node', '').trim().split(/\s+/).filter(Boolean)).toEqual([...NODE_FLAGS]);
  });
});
