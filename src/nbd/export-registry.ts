import type { Backend } from './backend.js';

export interface ExportEntry {
  name: string;
  description?: string;
}

/**
 * How the server finds the Backend for an export name. One Backend per export, shared by
 * every connection to it: that is what makes CAN_MULTI_CONN honest (a FLUSH on any
 * connection reaches the same fd and so covers writes made through all of them).
 */
export interface ExportResolver {
  get(name: string): Backend | undefined;
  describe(name: string): ExportEntry | undefined;
  list(): ExportEntry[];
}

export class ExportRegistry implements ExportResolver {
  private readonly exports = new Map<string, { backend: Backend; entry: ExportEntry }>();

  /** Register `backend` under `name` ("" is the default export). Replaces an existing one. */
  add(name: string, backend: Backend, opts: { description?: string } = {}): this {
    this.exports.set(name, { backend, entry: { name, ...(opts.description !== undefined ? { description: opts.description } : {}) } });
    return this;
  }

  remove(name: string): boolean {
    return this.exports.delete(name);
  }

  get(name: string): Backend | undefined {
    return this.exports.get(name)?.backend;
  }

  describe(name: string): ExportEntry | undefined {
    return this.exports.get(name)?.entry;
  }

  list(): ExportEntry[] {
    return [...this.exports.values()].map((e) => e.entry);
  }
}
