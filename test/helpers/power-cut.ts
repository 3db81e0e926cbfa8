import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';

/**
 * A power cut, simulated in the test process. A kill -9 keeps the page cache, so it proves
 * nothing about fsync; a power cut keeps only what an fsync/fdatasync covered. While a
 * recording runs, every fsync/fdatasync of a regular file under `root` (node:fs callbacks
 * and FileHandle.sync/datasync, which is everything Rewind's node side calls) snapshots the
 * file as it is when the sync STARTS: what was written before is durable once it succeeds,
 * what is written while it runs may not be. `image(dest)` writes the tree as the disk would
 * hold it after a cut at that moment:
 * - files that `syncedOnly` selects (journal segments, the backing file) hold their last
 *   synced snapshot; one never synced since the recording began holds its content at the
 *   start, or zeros of its current size if it is newer (a sparse file just created);
 * - other files are copied as they are: Rewind's side files (state.json, dirty.bitmap) are
 *   replaced atomically and synced before their write resolves, so take the image while
 *   none is being written.
 * Directory entries are taken as they are (creates and renames are fsynced where it matters).
 */
export class PowerCut {
  private readonly synced = new Map<string, { id: number; body: Buffer }>();
  private readonly baseline = new Map<string, Buffer>();
  private nextId = 0;
  private readonly undo: Array<() => void> = [];

  private constructor(readonly root: string, private readonly syncedOnly: (p: string) => boolean) {}

  static async start(root: string, o: { syncedOnly: (p: string) => boolean }): Promise<PowerCut> {
    fs.mkdirSync(root, { recursive: true });
    const pc = new PowerCut(fs.realpathSync(root), o.syncedOnly);
    for (const f of walk(pc.root)) pc.baseline.set(f, fs.readFileSync(f));
    await pc.install();
    return pc;
  }

  /** How many syncs of a file under root completed since the recording began. */
  get syncs(): number {
    return this.nextId;
  }

  /** Stop recording (the fs functions are put back). */
  stop(): void {
    for (const u of this.undo.splice(0).reverse()) u();
  }

  /** Write the tree under root as a power cut now would leave it into `dest`. */
  image(dest: string): void {
    fs.mkdirSync(dest, { recursive: true });
    for (const f of walk(this.root)) {
      const rel = path.relative(this.root, f);
      const out = path.join(dest, rel);
      fs.mkdirSync(path.dirname(out), { recursive: true });
      if (!this.syncedOnly(f)) {
        fs.copyFileSync(f, out);
        continue;
      }
      const body = this.synced.get(f)?.body ?? this.baseline.get(f);
      if (body) fs.writeFileSync(out, body);
      else {
        // Never made durable: a sparse file of the size the directory entry has.
        fs.writeFileSync(out, Buffer.alloc(0));
        fs.truncateSync(out, fs.statSync(f).size);
      }
    }
  }

  private snapshot(fd: number): (() => void) | undefined {
    let p: string;
    try {
      p = fs.readlinkSync(`/proc/self/fd/${fd}`);
      if (!p.startsWith(this.root + path.sep) || !fs.fstatSync(fd).isFile()) return undefined;
    } catch {
      return undefined;
    }
    // Read through /proc: a new open of the same inode, so an O_DIRECT fd needs no aligned buffer.
    const body = fs.readFileSync(`/proc/self/fd/${fd}`);
    const id = ++this.nextId;
    return () => {
      const prev = this.synced.get(p);
      if (!prev || prev.id < id) this.synced.set(p, { id, body });
    };
  }

  private async install(): Promise<void> {
    const self = this;
    type Cb = (err: NodeJS.ErrnoException | null) => void;
    for (const name of ['fsync', 'fdatasync'] as const) {
      const real = fs[name];
      const patched = (fd: number, cb: Cb) => {
        const commit = self.snapshot(fd);
        real(fd, (err) => {
          if (!err) commit?.();
          cb(err);
        });
      };
      (fs as unknown as Record<string, unknown>)[name] = patched;
      this.undo.push(() => ((fs as unknown as Record<string, unknown>)[name] = real));
    }
    for (const name of ['fsyncSync', 'fdatasyncSync'] as const) {
      const real = fs[name];
      (fs as unknown as Record<string, unknown>)[name] = (fd: number) => {
        const commit = self.snapshot(fd);
        real(fd);
        commit?.();
      };
      this.undo.push(() => ((fs as unknown as Record<string, unknown>)[name] = real));
    }
    const fh = await fsp.open('/dev/null', 'r');
    const proto = Object.getPrototypeOf(fh) as { sync(): Promise<void>; datasync(): Promise<void> };
    await fh.close();
    for (const name of ['sync', 'datasync'] as const) {
      const real = proto[name];
      proto[name] = async function (this: { fd: number }) {
        const commit = self.snapshot(this.fd);
        await real.call(this);
        commit?.();
      };
      this.undo.push(() => (proto[name] = real));
    }
  }
}

function* walk(dir: string): Generator<string> {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* walk(p);
    else if (e.isFile()) yield p;
  }
}
