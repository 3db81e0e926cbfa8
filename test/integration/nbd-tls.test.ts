import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNbdServer, type NbdServer } from '../../src/nbd/server.js';
import { ExportRegistry } from '../../src/nbd/export-registry.js';
import { FileBackend } from '../../src/nbd/file-backend.js';
import { makeTempDir, requirePeer, runPeer, sha256File } from '../helpers/nbd-peers.js';

const SIZE = 16 * 1024 * 1024;

describe('NBD STARTTLS with node:tls, driven by libnbd clients', () => {
  let dir: string;
  let server: NbdServer;
  let backend: FileBackend;
  let port: number;
  let certDir: string;

  beforeAll(async () => {
    for (const t of ['openssl', 'nbdinfo', 'nbdcopy']) requirePeer(t);
    dir = makeTempDir();
    const ossl = (args: string[]) => runPeer('openssl', args, { cwd: dir });
    await ossl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca-key.pem', '-out', 'ca-cert.pem', '-days', '1', '-subj', '/CN=rewind-test-ca']);
    await ossl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server-key.pem', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
    fs.writeFileSync(path.join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
    await ossl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca-cert.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-out', 'server-cert.pem', '-days', '1', '-extfile', 'ext.cnf']);
    // libnbd looks for ca-cert.pem in the tls-certificates directory.
    certDir = path.join(dir, 'client');
    fs.mkdirSync(certDir);
    fs.copyFileSync(path.join(dir, 'ca-cert.pem'), path.join(certDir, 'ca-cert.pem'));
    backend = await FileBackend.open(path.join(dir, 'tls.img'), { size: SIZE });
    server = createNbdServer({
      exports: new ExportRegistry().add('', backend),
      tls: { mode: 'required', secureContext: { key: fs.readFileSync(path.join(dir, 'server-key.pem')), cert: fs.readFileSync(path.join(dir, 'server-cert.pem')) } },
    });
    port = ((await server.listen({ host: '127.0.0.1', port: 0 })) as net.AddressInfo).port;
  });

  afterAll(async () => {
    await server?.close();
    await backend?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('negotiates TLS and round-trips data through it', async () => {
    const uri = `nbds://127.0.0.1:${port}/?tls-certificates=${certDir}`;
    const info = await runPeer('nbdinfo', [uri]);
    expect(info.stdout).toMatch(/with TLS/);
    const src = path.join(dir, 'src.img');
    fs.writeFileSync(src, crypto.randomBytes(SIZE));
    await runPeer('nbdcopy', [src, uri]);
    const back = path.join(dir, 'back.img');
    await runPeer('nbdcopy', [uri, back]);
    expect(await sha256File(back)).toBe(await sha256File(src));
  });

  it('refuses the export to a client that does not start TLS', async () => {
    const r = await runPeer('nbdinfo', [`nbd://127.0.0.1:${port}/`], { check: false });
    expect(r.code).not.toBe(0);
  });
});
