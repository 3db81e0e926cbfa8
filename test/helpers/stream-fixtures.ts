import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { HybridClock } from '../../src/core/hlc.js';
import { RecordKind, type JournalRecord } from '../../src/journal/record.js';
import type { ShipperSpool } from '../../src/ship/shipper.js';

/**
 * An in-memory spool with the real spool's shipping surface (append/read/waitForRecords/
 * ack/lastSeq). It keeps every record so a test can compare what the collector holds with
 * what was journaled.
 */
export class MemorySpool implements ShipperSpool {
  readonly records: JournalRecord[] = [];
  lastSeq = 0n;
  ackedSeq = 0n;
  private wake: Array<() => void> = [];
  private readonly clock = new HybridClock();

  async append(e: { kind: RecordKind; flags: number; offset: bigint; length: number; payload: Buffer }): Promise<JournalRecord> {
    const rec: JournalRecord = { ...e, seq: ++this.lastSeq, time: this.clock.now() };
    this.records.push(rec);
    for (const w of this.wake.splice(0)) w();
    return rec;
  }

  async sync(): Promise<bigint> {
    return this.lastSeq;
  }

  async read(fromSeq: bigint, opts: { maxRecords?: number; maxBytes?: number } = {}): Promise<JournalRecord[]> {
    const out: JournalRecord[] = [];
    let bytes = 0;
    for (let i = Number(fromSeq) - 1; i < this.records.length && i >= 0; i++) {
      const r = this.records[i]!;
      if (out.length > 0 && (out.length >= (opts.maxRecords ?? 1024) || bytes + r.payload.length > (opts.maxBytes ?? 1 << 20))) break;
      out.push(r);
      bytes += r.payload.length + 48;
    }
    return out;
  }

  waitForRecords(afterSeq: bigint, signal?: AbortSignal): Promise<void> {
    if (this.lastSeq > afterSeq || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this.wake.push(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  ack(seq: bigint): void {
    if (seq > this.ackedSeq) this.ackedSeq = seq;
  }
}

/** A random mutation inside a volume of `size` bytes (writes, trims, zeroes, marks). */
export async function randomMutation(spool: MemorySpool, size: number, rnd: () => number = Math.random): Promise<JournalRecord> {
  const blocks = size / 4096;
  const off = BigInt(Math.floor(rnd() * blocks) * 4096);
  const maxLen = Math.min(16, blocks - Number(off / 4096n));
  const len = (1 + Math.floor(rnd() * maxLen)) * 4096;
  const p = rnd();
  if (p < 0.8) return spool.append({ kind: RecordKind.Write, flags: 0, offset: off, length: len, payload: randomBytes(len) });
  if (p < 0.9) return spool.append({ kind: RecordKind.Trim, flags: 0, offset: off, length: len, payload: Buffer.alloc(0) });
  if (p < 0.97) return spool.append({ kind: RecordKind.Zero, flags: 0, offset: off, length: len, payload: Buffer.alloc(0) });
  return spool.append({ kind: RecordKind.Mark, flags: 0, offset: 0n, length: 0, payload: Buffer.from(`m${spool.lastSeq + 1n}`) });
}

/** Replay records ≤ uptoSeq onto a zero image: the truth a restore must equal. */
export function replay(records: JournalRecord[], size: number, uptoSeq: bigint): Buffer {
  const img = Buffer.alloc(size);
  for (const r of records) {
    if (r.seq > uptoSeq) break;
    const o = Number(r.offset);
    if (r.kind === RecordKind.Write) r.payload.copy(img, o);
    else if (r.kind === RecordKind.Trim || r.kind === RecordKind.Zero) img.fill(0, o, o + r.length);
  }
  return img;
}

/**
 * A TCP proxy in the test process that can cut every connection through it: the network
 * failing under a live stream, without touching either end.
 */
export class CuttingProxy {
  private server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  cuts = 0;
  port = 0;

  constructor(private readonly targetPort: number, private readonly targetHost = '127.0.0.1') {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.targetPort, this.targetHost);
      client.setNoDelay(true);
      upstream.setNoDelay(true);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream);
      upstream.pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this.port;
  }

  /** Reset every live connection, as a dropped link would. */
  cut(): void {
    if (this.sockets.size > 0) this.cuts++;
    for (const s of this.sockets) s.resetAndDestroy();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

export interface TestCerts {
  ca: Buffer;
  serverCert: Buffer;
  serverKey: Buffer;
  clientCert: Buffer;
  clientKey: Buffer;
  /** A client certificate from a CA the collector does not trust. */
  rogueCert: Buffer;
  rogueKey: Buffer;
}

/** CA, server (SAN localhost/127.0.0.1) and client certificates made with openssl. */
export function makeCerts(dir: string): TestCerts {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const f = (n: string) => path.join(dir, n);
  const ca = (name: string) => {
    run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-keyout', f(`${name}.key`), '-out', f(`${name}.crt`));
  };
  const leaf = (name: string, caName: string, ext: string) => {
    run('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`));
    execFileSync('sh', ['-c', `printf '%s\\n' '${ext}' > ${f(`${name}.ext`)}`]);
    run('x509', '-req', '-in', f(`${name}.csr`), '-CA', f(`${caName}.crt`), '-CAkey', f(`${caName}.key`), '-CAcreateserial', '-days', '2', '-extfile', f(`${name}.ext`), '-out', f(`${name}.crt`));
  };
  ca('test-ca');
  ca('rogue-ca');
  leaf('server', 'test-ca', 'subjectAltName=DNS:localhost,IP:127.0.0.1');
  leaf('client', 'test-ca', 'extendedKeyUsage=clientAuth');
  leaf('rogue', 'rogue-ca', 'extendedKeyUsage=clientAuth');
  const r = (n: string) => readFileSync(f(n));
  return {
    ca: r('test-ca.crt'),
    serverCert: r('server.crt'),
    serverKey: r('server.key'),
    clientCert: r('client.crt'),
    clientKey: r('client.key'),
    rogueCert: r('rogue.crt'),
    rogueKey: r('rogue.key'),
  };
}

/** Poll `cond` every 20 ms until true or `ms` passes (bounded loop). */
export async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/** The write a test shipper process makes as entry `seq`: checkable after the process died. */
export function expectedWrite(seq: bigint, size: bigint): { offset: bigint; payload: Buffer } {
  const blocks = size / 4096n;
  return { offset: ((seq * 7n) % blocks) * 4096n, payload: Buffer.alloc(4096, Number(seq % 251n)) };
}
