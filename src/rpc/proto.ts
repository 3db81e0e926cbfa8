import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { decodeAppendRequest, encodeBatchRequest } from './append-codec.js';
import type { AppendRequestMsg } from './messages.js';

/**
 * The .proto files are the contract and are loaded at run time with proto-loader
 * (no generated code to drift from them); the TypeScript shapes of the messages are
 * written by hand in messages.ts. 64-bit integers arrive as decimal strings (`longs:
 * String`) and are converted to bigint at the edge, so no precision is ever lost.
 */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

/** Works from src/ (tsx, vitest) and from dist/src/ (built): walk up to the repo's proto/. */
export function protoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    const candidate = path.join(dir, 'proto');
    if (existsSync(path.join(candidate, 'rewind', 'v1alpha1', 'collector.proto'))) return candidate;
    dir = path.dirname(dir);
  }
  throw new Error('proto/rewind/v1alpha1/collector.proto not found above ' + fileURLToPath(import.meta.url));
}

interface Loaded {
  collector: grpc.ServiceClientConstructor;
  snapshotMetadata: grpc.ServiceClientConstructor;
}

let cached: Loaded | undefined;

/** Append's requests take the hand codec (append-codec.ts); must run before clients or servers capture the method. */
function useAppendCodec(service: protoLoader.ServiceDefinition): void {
  const append = service.Append!;
  const generic = { serialize: append.requestSerialize, deserialize: append.requestDeserialize };
  append.requestSerialize = (o: object) => {
    const m = o as AppendRequestMsg;
    return m.msg === 'batch' && m.batch ? encodeBatchRequest(m.batch) : generic.serialize(m);
  };
  append.requestDeserialize = (b: Buffer) => decodeAppendRequest(b, generic.deserialize as (b: Buffer) => AppendRequestMsg);
}

export function loadProtos(): Loaded {
  if (cached) return cached;
  const root = protoRoot();
  const def = protoLoader.loadSync(['rewind/v1alpha1/collector.proto', 'csi/snapshot-metadata.proto'], {
    ...LOADER_OPTIONS,
    includeDirs: [root],
  });
  useAppendCodec(def['rewind.v1alpha1.Collector'] as protoLoader.ServiceDefinition);
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    rewind: { v1alpha1: { Collector: grpc.ServiceClientConstructor } };
    csi: { v1: { SnapshotMetadata: grpc.ServiceClientConstructor } };
  };
  cached = { collector: pkg.rewind.v1alpha1.Collector, snapshotMetadata: pkg.csi.v1.SnapshotMetadata };
  return cached;
}
