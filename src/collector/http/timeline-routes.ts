import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { ErrorCodes, RewindError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { RewindMetrics } from '../../metrics/rewind-metrics.js';
import type { CollectorStore } from '../store/collector-store.js';
import { RestoreJobs } from '../jobs/restore-jobs.js';
import { registerRestoreRoutes } from './restore-routes.js';

/**
 * The timeline page (`/ui/`): plain HTML, CSS and JS from src/collector/ui plus uPlot from
 * node_modules, all served by the collector itself — nothing is fetched from elsewhere at
 * run time, and the CSP says so to the browser. The page drives the JSON API only, so the
 * restore jobs it starts are registered here too.
 */
export interface TimelineRoutesOptions {
  store: CollectorStore;
  /** --restore-dir: where restore jobs may write image files; without it they are refused. */
  restoreDir?: string;
  metrics?: RewindMetrics;
}

interface Asset {
  body: Buffer;
  type: string;
}

const HERE = path.dirname(fileURLToPath(import.meta.url));

/**
 * src/collector/ui next to this file when run from the sources (tsx); from dist/ the
 * compiler copied only the .js, so the package root's src/collector/ui (the image ships it).
 */
function uiDir(): string {
  const candidates = [path.join(HERE, '..', 'ui'), path.join(HERE, '..', '..', '..', '..', 'src', 'collector', 'ui')];
  const found = candidates.find((d) => fs.existsSync(path.join(d, 'index.html')));
  if (!found) throw new RewindError(ErrorCodes.NOT_FOUND, `the timeline page's files are missing (looked in ${candidates.join(', ')}); reinstall rewind with src/collector/ui`);
  return found;
}

function loadAssets(): Map<string, Asset> {
  const ui = uiDir();
  const uplot = path.dirname(createRequire(import.meta.url).resolve('uplot/dist/uPlot.iife.min.js'));
  const files: Array<[string, string, string]> = [
    ['/ui/', path.join(ui, 'index.html'), 'text/html; charset=utf-8'],
    ['/ui/timeline.js', path.join(ui, 'timeline.js'), 'text/javascript; charset=utf-8'],
    ['/ui/timeline.css', path.join(ui, 'timeline.css'), 'text/css; charset=utf-8'],
    ['/ui/vendor/uPlot.iife.min.js', path.join(uplot, 'uPlot.iife.min.js'), 'text/javascript; charset=utf-8'],
    ['/ui/vendor/uPlot.min.css', path.join(uplot, 'uPlot.min.css'), 'text/css; charset=utf-8'],
  ];
  // Read once at start-up: a handful of small files, and a fixed list means no request
  // path ever reaches the file system.
  return new Map(files.map(([url, file, type]) => [url, { body: fs.readFileSync(file), type }]));
}

/** Only our own origin: the page works offline and nothing injected can call out. */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export function registerTimelineRoutes(app: FastifyInstance, o: TimelineRoutesOptions, log: Logger): void {
  const assets = loadAssets();
  const jobs = new RestoreJobs({ restoreDir: o.restoreDir, ...(o.metrics ? { metrics: o.metrics } : {}), log: log.child({ component: 'restore-jobs' }) });
  app.addHook('onClose', async () => jobs.close());
  registerRestoreRoutes(app, o.store, jobs);

  app.get('/', async (_req, reply) => reply.redirect('/ui/'));
  app.get('/ui', async (_req, reply) => reply.redirect('/ui/'));
  for (const [url, a] of assets) {
    app.get(url, async (_req, reply) => reply
      .type(a.type)
      .header('cache-control', 'no-cache')
      .header('x-content-type-options', 'nosniff')
      .header('content-security-policy', CSP)
      .send(a.body));
  }
}
