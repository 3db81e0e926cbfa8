import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ErrorCodes, RewindError } from '../core/errors.js';
import type { ControllerMetrics } from '../metrics/controller-metrics.js';
import type { ListenAddress } from './listen-address.js';

/**
 * `rewind controller --metrics`: Prometheus /metrics and /healthz on a plain node:http
 * server. No framework: two GET routes, and the controller must not fail to start for
 * want of anything else.
 */
export async function startControllerMetricsHttp(addr: ListenAddress, metrics: ControllerMetrics): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (url === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      return;
    }
    if (url !== '/metrics') {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ code: ErrorCodes.NOT_FOUND, message: `no route ${url}; the controller serves /metrics and /healthz` }));
      return;
    }
    metrics.render().then(
      (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(String(err)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new RewindError(ErrorCodes.UNAVAILABLE, `controller --metrics cannot listen on ${JSON.stringify(addr)}: ${err.message}; pick a free port`, { cause: err })));
    server.listen('path' in addr ? { path: addr.path } : { host: addr.host, port: addr.port }, resolve);
  });
  const a = server.address();
  const url = typeof a === 'string' ? `unix:${a}` : `http://${(a as AddressInfo).address.includes(':') ? `[${(a as AddressInfo).address}]` : (a as AddressInfo).address}:${(a as AddressInfo).port}`;
  return { url, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
