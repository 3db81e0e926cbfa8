import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ErrorCodes, RewindError, fromSystemError } from '../core/errors.js';

/**
 * Transport security for the collector's gRPC endpoint (DESIGN §3, issue 3 item 5).
 * mTLS when certificates are configured; plaintext only when explicitly allowed, so a
 * missing secret mount can never silently downgrade a production collector.
 */
export interface TlsMaterial {
  /** PEM certificate chain of this endpoint. */
  cert: Buffer | string;
  /** PEM private key. */
  key: Buffer | string;
  /** PEM CA bundle that peers' certificates must chain to. */
  ca?: Buffer | string;
}

export interface ServerTls extends TlsMaterial {
  /** Refuse clients without a certificate signed by `ca` (mutual TLS). Default true when `ca` is set. */
  requireClientCert?: boolean;
}

function read(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw fromSystemError(err, `reading ${what} ${file}`);
  }
}

export function loadTlsFiles(files: { certFile: string; keyFile: string; caFile?: string }): TlsMaterial {
  return {
    cert: read(files.certFile, 'TLS certificate'),
    key: read(files.keyFile, 'TLS key'),
    ca: files.caFile ? read(files.caFile, 'TLS CA bundle') : undefined,
  };
}

/**
 * A Kubernetes TLS secret mounted as a directory (cert-manager's layout): tls.crt,
 * tls.key and, when present, ca.crt.
 */
export function loadTlsSecretDir(dir: string): TlsMaterial {
  let ca: Buffer | undefined;
  try {
    ca = readFileSync(path.join(dir, 'ca.crt'));
  } catch {
    ca = undefined;
  }
  return { cert: read(path.join(dir, 'tls.crt'), 'TLS certificate'), key: read(path.join(dir, 'tls.key'), 'TLS key'), ca };
}

const buf = (b: Buffer | string): Buffer => (typeof b === 'string' ? Buffer.from(b) : b);

export function serverCredentials(opts: { tls?: ServerTls; allowPlaintext?: boolean }): grpc.ServerCredentials {
  if (opts.tls) {
    const { cert, key, ca } = opts.tls;
    const requireClientCert = opts.tls.requireClientCert ?? ca !== undefined;
    if (requireClientCert && !ca) {
      throw new RewindError(ErrorCodes.INVALID_ARGUMENT, 'requireClientCert is set but no CA bundle was given; configure the CA that signs shipper certificates');
    }
    return grpc.ServerCredentials.createSsl(ca ? buf(ca) : null, [{ cert_chain: buf(cert), private_key: buf(key) }], requireClientCert);
  }
  if (opts.allowPlaintext === true) return grpc.ServerCredentials.createInsecure();
  throw new RewindError(
    ErrorCodes.INVALID_ARGUMENT,
    'the collector has no TLS certificates configured and plaintext is not allowed; mount a TLS secret (tls.crt, tls.key, ca.crt) or set allowPlaintext explicitly for a trusted network',
  );
}
