/**
 * The Kubernetes API of Rewind (cdp.rewind.dev/v1alpha1): types for the controller and the
 * plugins, and the CRDs that crds/ is generated from (`npm run gen:crds`).
 */
import { customResourceDefinition, printerColumnsOf, renderCrdYaml, type CustomResourceDefinition, type KindDefinition, type PrinterColumn } from './crd.js';
import { protectedVolumeDefinition } from './protected-volume.js';
import { restorePointDefinition } from './restore-point.js';
import { volumeRestoreDefinition } from './volume-restore.js';
import { GROUP } from './shared.js';

export * from './shared.js';
export * from './crd.js';
export * from './protected-volume.js';
export * from './restore-point.js';
export * from './volume-restore.js';
export { isDns1123Subdomain, type JSONSchema, type ValidationRule } from './schema.js';

/** Every kind, in the order the files and docs list them. */
export const KIND_DEFINITIONS: readonly KindDefinition[] = [protectedVolumeDefinition, restorePointDefinition, volumeRestoreDefinition];

export const CRDS: readonly CustomResourceDefinition[] = KIND_DEFINITIONS.map(customResourceDefinition);

/** kind → its printer columns as installed (Age included): for tests that check each fills. */
export const PRINTER_COLUMNS: Readonly<Record<string, readonly PrinterColumn[]>> = Object.fromEntries(KIND_DEFINITIONS.map((d) => [d.kind, printerColumnsOf(d)]));

/** kind → short names. */
export const SHORT_NAMES: Readonly<Record<string, readonly string[]>> = Object.fromEntries(KIND_DEFINITIONS.map((d) => [d.kind, d.shortNames]));

/** Plurals, for CustomObjectsApi calls. */
export const PLURALS = {
  ProtectedVolume: protectedVolumeDefinition.plural,
  RestorePoint: restorePointDefinition.plural,
  VolumeRestore: volumeRestoreDefinition.plural,
} as const;

/** crds/<file name> → its YAML, exactly as checked in. */
export function renderCrdFiles(): Map<string, string> {
  return new Map(CRDS.map((crd) => [`${crd.spec.names.plural}.${GROUP}.yaml`, renderCrdYaml(crd)]));
}
