import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { LOADER_OPTIONS, protoRoot } from '../rpc/proto.js';

/**
 * The CSI spec's own csi.proto (v1.13.0, copied unchanged from the Go module
 * github.com/container-storage-interface/spec). It is loaded apart from
 * proto/csi/snapshot-metadata.proto: both declare package csi.v1 with the same
 * SnapshotMetadata messages, and one protobufjs root cannot hold both.
 */
export interface CsiServices {
  Identity: grpc.ServiceClientConstructor;
  Controller: grpc.ServiceClientConstructor;
  Node: grpc.ServiceClientConstructor;
}

let cached: CsiServices | undefined;

export function loadCsiProto(): CsiServices {
  if (cached) return cached;
  const root = protoRoot();
  const def = protoLoader.loadSync([path.join('csi', 'csi.proto')], { ...LOADER_OPTIONS, includeDirs: [root] });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { csi: { v1: CsiServices } };
  cached = { Identity: pkg.csi.v1.Identity, Controller: pkg.csi.v1.Controller, Node: pkg.csi.v1.Node };
  return cached;
}

/** The driver's name (DESIGN.md §3), the StorageClass provisioner and the PV's csi.driver. */
export const DRIVER_NAME = 'cdp.rewind.dev';
/** The topology key of the local backing model: the node that holds the sparse file. */
export const TOPOLOGY_KEY = 'topology.cdp.rewind.dev/node';
