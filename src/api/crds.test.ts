import fs from 'node:fs';
import path from 'node:path';
import { loadYaml } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { CRDS, GENERATED_HEADER, GROUP, KIND_DEFINITIONS, PRINTER_COLUMNS, SHORT_NAMES, renderCrdFiles, type JSONSchema } from './index.js';
import { ADDON_SHORT_NAMES, BUILTIN_SHORT_NAMES } from './builtin-short-names.js';
import { CRDS_DIR } from './generate.js';

/** Every schema node with its path, depth first. */
function* walk(s: JSONSchema, at = ''): Generator<[string, JSONSchema]> {
  yield [at || '<root>', s];
  for (const [k, v] of Object.entries(s.properties ?? {})) yield* walk(v, `${at}.${k}`);
  if (s.items) yield* walk(s.items, `${at}[]`);
  if (typeof s.additionalProperties === 'object') yield* walk(s.additionalProperties, `${at}{}`);
}

const rootOf = (kind: string) => CRDS.find((c) => c.spec.names.kind === kind)!.spec.versions[0]!.schema.openAPIV3Schema;

/**
 * The schema node a printer column's jsonPath reaches, or undefined. Understands the forms
 * columns use: `.a.b`, `[n]`, `[*]` and `[?(@.k=="v")]` on arrays.
 */
function resolve(root: JSONSchema, jsonPath: string): JSONSchema | undefined {
  let node: JSONSchema | undefined = root;
  for (const tok of jsonPath.match(/\.[A-Za-z0-9_]+|\[[^\]]*\]/g) ?? []) {
    if (!node) return undefined;
    if (tok.startsWith('[')) {
      if (node.type !== 'array') return undefined;
      const filter = /^\[\?\(@\.([A-Za-z0-9_]+)\s*==\s*"[^"]*"\)\]$/.exec(tok);
      if (filter && !node.items?.properties?.[filter[1]!]) return undefined;
      node = node.items;
    } else if (tok === '.metadata' && node === root) {
      node = { type: 'object', properties: { creationTimestamp: { type: 'string', format: 'date-time' }, name: { type: 'string' } } };
    } else {
      node = node.properties?.[tok.slice(1)];
    }
  }
  return node;
}

describe('crds/', () => {
  it('holds exactly what src/api renders (run npm run gen:crds after changing src/api)', () => {
    const want = renderCrdFiles();
    const have = fs.readdirSync(CRDS_DIR).filter((f) => f.endsWith(`.${GROUP}.yaml`));
    expect(have.sort(), 'run npm run gen:crds').toEqual([...want.keys()].sort());
    for (const [name, text] of want) {
      expect(fs.readFileSync(path.join(CRDS_DIR, name), 'utf8'), `crds/${name} is stale: run npm run gen:crds`).toBe(text);
    }
  });

  it('each file is the CRD object itself, one per kind, named <plural>.<group>', () => {
    const files = renderCrdFiles();
    expect(files.size).toBe(3);
    for (const crd of CRDS) {
      const text = files.get(`${crd.spec.names.plural}.${GROUP}.yaml`)!;
      const [header, apiVersion, kind, ...body] = text.split('\n');
      expect(`${header}\n`).toBe(GENERATED_HEADER);
      expect([apiVersion, kind]).toEqual(['apiVersion: apiextensions.k8s.io/v1', 'kind: CustomResourceDefinition']);
      const { apiVersion: _a, kind: _k, ...rest } = crd;
      expect(loadYaml(body.join('\n'))).toEqual(rest);
      expect(crd.metadata.name).toBe(`${crd.spec.names.plural}.${GROUP}`);
    }
  });

  it('every kind is namespaced, in the rewind category, with a status subresource and one served storage version', () => {
    for (const crd of CRDS) {
      expect(crd.spec.scope).toBe('Namespaced');
      expect(crd.spec.names.categories).toEqual(['rewind']);
      expect(crd.spec.versions).toHaveLength(1);
      expect(crd.spec.versions[0]).toMatchObject({ name: 'v1alpha1', served: true, storage: true, subresources: { status: {} } });
    }
  });
});

describe('schemas', () => {
  it('are structural: every node has a type, properties only on objects, never with additionalProperties', () => {
    const problems: string[] = [];
    for (const crd of CRDS) {
      for (const [at, s] of walk(crd.spec.versions[0]!.schema.openAPIV3Schema)) {
        const where = `${crd.spec.names.kind} ${at}`;
        if (s['x-kubernetes-int-or-string']) {
          // The one exception the API server allows: no type, anyOf of exactly integer|string.
          if (s.type || JSON.stringify(s.anyOf) !== JSON.stringify([{ type: 'integer' }, { type: 'string' }])) problems.push(`${where}: bad int-or-string`);
          continue;
        }
        if (!s.type) problems.push(`${where}: no type`);
        if (s.anyOf) problems.push(`${where}: anyOf outside int-or-string`);
        if (s.properties && s.additionalProperties !== undefined) problems.push(`${where}: properties with additionalProperties`);
        if ((s.properties || s.additionalProperties !== undefined || s.required) && s.type !== 'object') problems.push(`${where}: object keywords on ${s.type}`);
        if (s.type === 'array' && !s.items) problems.push(`${where}: array without items`);
        for (const r of s.required ?? []) if (!s.properties?.[r]) problems.push(`${where}: required ${r} not in properties`);
        if (s['x-kubernetes-list-type'] === 'map') {
          for (const k of s['x-kubernetes-list-map-keys'] ?? []) if (!s.items?.required?.includes(k)) problems.push(`${where}: list-map key ${k} not required`);
        }
        if (s.enum && s.enum.some((v) => typeof v !== 'string' || s.type !== 'string')) problems.push(`${where}: enum not of strings`);
        if (s.pattern && s.type !== 'string') problems.push(`${where}: pattern on ${s.type}`);
        if (s.pattern) new RegExp(s.pattern);
      }
    }
    expect(problems).toEqual([]);
  });

  it('metadata is left to the API server (a structural schema may not restrict more than name)', () => {
    for (const k of KIND_DEFINITIONS) expect(rootOf(k.kind).properties!.metadata).toEqual({ type: 'object' });
  });

  it('every CEL rule comes with a message, and strings that CEL reads are bounded (cost estimate)', () => {
    for (const crd of CRDS) {
      for (const [at, s] of walk(crd.spec.versions[0]!.schema.openAPIV3Schema)) {
        for (const r of s['x-kubernetes-validations'] ?? []) expect(r.message, `${crd.spec.names.kind} ${at}: ${r.rule}`).toMatch(/\w/);
        if (s.type === 'string' && s['x-kubernetes-validations']) expect(s.maxLength, at).toBeGreaterThan(0);
      }
    }
  });

  it('immutability and exactly-one rules sit where the issue puts them', () => {
    const rules = (kind: string, ...p: string[]) => {
      let s = rootOf(kind);
      for (const k of p) s = s.properties![k]!;
      return (s['x-kubernetes-validations'] ?? []).map((r) => r.rule);
    };
    expect(rules('ProtectedVolume', 'spec', 'pvcName')).toContain('self == oldSelf');
    expect(rules('ProtectedVolume', 'spec', 'retention', 'pointInTime')).toContain("duration(self) > duration('0s')");
    expect(rules('ProtectedVolume', 'spec', 'retention', 'marks')).toContain("duration(self) > duration('0s')");
    expect(rules('ProtectedVolume', 'spec', 'retention').join()).toContain('duration(self.marks) >= duration(self.pointInTime)');
    expect(rules('RestorePoint', 'spec')).toEqual(['has(self.volume) != has(self.selector)', 'self == oldSelf']);
    expect(rules('VolumeRestore', 'spec')).toEqual(['self == oldSelf']);
    expect(rules('VolumeRestore', 'spec', 'source')).toEqual(['has(self.restorePoint) != has(self.at)']);
    expect(rules('VolumeRestore', 'spec', 'target')).toEqual(['has(self.newPVC) != (has(self.inPlace) && self.inPlace)']);
  });
});

describe('printer columns', () => {
  it('each jsonPath reaches a field the schema defines, of the column type', () => {
    const bad: string[] = [];
    const typeOk: Record<string, (s: JSONSchema) => boolean> = {
      string: (s) => s.type === 'string',
      date: (s) => s.type === 'string' && s.format === 'date-time',
      integer: (s) => s.type === 'integer',
      number: (s) => s.type === 'number' || s.type === 'integer',
      boolean: (s) => s.type === 'boolean',
    };
    for (const [kind, cols] of Object.entries(PRINTER_COLUMNS)) {
      for (const c of cols) {
        const node = resolve(rootOf(kind), c.jsonPath);
        if (!node) bad.push(`${kind} ${c.name}: ${c.jsonPath} resolves to nothing`);
        else if (!typeOk[c.type]!(node)) bad.push(`${kind} ${c.name}: ${c.type} column on a ${node.type}`);
      }
      expect(cols.at(-1)!.name).toBe('Age');
      expect(new Set(cols.map((c) => c.name)).size).toBe(cols.length);
    }
    expect(bad).toEqual([]);
  });

  it('the resolver itself refuses a condition filter on a field conditions lack, and a missing field', () => {
    expect(resolve(rootOf('ProtectedVolume'), '.status.conditions[?(@.kind=="Protected")].status')).toBeUndefined();
    expect(resolve(rootOf('ProtectedVolume'), '.status.lag')).toBeUndefined();
    expect(resolve(rootOf('ProtectedVolume'), '.status.conditions[?(@.type=="Protected")].status')?.enum).toEqual(['True', 'False', 'Unknown']);
  });
});

describe('short names', () => {
  it('collide with no built-in or common add-on short name, resource name, or each other', () => {
    const ours = Object.values(SHORT_NAMES).flat();
    expect(ours.length).toBeGreaterThanOrEqual(3);
    expect(new Set(ours).size).toBe(ours.length);
    for (const s of ours) {
      expect(s).toMatch(/^[a-z]+$/);
      expect(BUILTIN_SHORT_NAMES).not.toContain(s);
      expect(ADDON_SHORT_NAMES).not.toContain(s);
    }
    const names = CRDS.flatMap((c) => [c.spec.names.plural, c.spec.names.singular]);
    for (const s of ours) expect(names).not.toContain(s);
  });
});
