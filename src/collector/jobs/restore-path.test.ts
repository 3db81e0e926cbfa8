import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../core/errors.js';
import { checkRestoreTarget, prepareRestoreDir } from './restore-path.js';

let dir: string;
beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rewind-restore-path-'));
});
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

describe('the restore directory', () => {
  it('is created when missing and resolved through symlinks, so a target under a symlinked root is checked against the real one', async () => {
    await fsp.mkdir(path.join(dir, 'real'));
    await fsp.symlink(path.join(dir, 'real'), path.join(dir, 'link'));
    const root = await prepareRestoreDir(path.join(dir, 'link'));
    expect(root).toBe(await fsp.realpath(path.join(dir, 'real')));
    expect(await checkRestoreTarget(root, path.join(root, 'a.img'))).toEqual({ file: path.join(root, 'a.img'), partial: path.join(root, 'a.img.partial') });
    expect((await fsp.stat(await prepareRestoreDir(path.join(dir, 'new', 'deeper')))).isDirectory()).toBe(true);
  });

  it('refuses a file as the directory, saying so', async () => {
    await fsp.writeFile(path.join(dir, 'plain'), 'x');
    await expect(prepareRestoreDir(path.join(dir, 'plain'))).rejects.toMatchObject({ code: ErrorCodes.INVALID_ARGUMENT, message: expect.stringMatching(/is not a directory/) });
    await expect(prepareRestoreDir(path.join(dir, 'plain', 'under'))).rejects.toMatchObject({ code: ErrorCodes.INVALID_ARGUMENT });
  });

  it('takes a path with dot segments that stays inside, and refuses one that leaves', async () => {
    const root = await prepareRestoreDir(path.join(dir, 'dots'));
    await fsp.mkdir(path.join(root, 'sub'));
    expect((await checkRestoreTarget(root, `${root}/sub/../b.img`)).file).toBe(path.join(root, 'b.img'));
    await expect(checkRestoreTarget(root, `${root}/sub/../../b.img`)).rejects.toMatchObject({ code: ErrorCodes.PERMISSION_DENIED });
    await expect(checkRestoreTarget(root, `${root}/sub/..`)).rejects.toMatchObject({ code: ErrorCodes.INVALID_ARGUMENT });
    await expect(checkRestoreTarget(root, `${root}-sibling/b.img`)).rejects.toMatchObject({ code: ErrorCodes.PERMISSION_DENIED });
    await expect(checkRestoreTarget(root, `${root}/b\0.img`)).rejects.toMatchObject({ code: ErrorCodes.INVALID_ARGUMENT });
  });
});
