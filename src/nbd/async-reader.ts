import { ByteQueue } from './byte-queue.js';
import { ErrorCodes, RewindError } from '../core/errors.js';

/**
 * Promise-shaped reads over a ByteQueue, used by the handshake (a few dozen small
 * messages, where clarity beats speed). Transmission reads the queue synchronously.
 */
export class AsyncReader {
  readonly queue = new ByteQueue();
  private waiter: { need: number; resolve: () => void; reject: (e: Error) => void } | undefined;
  private closedWith: Error | undefined;

  push(chunk: Buffer): void {
    this.queue.push(chunk);
    this.wake();
  }

  /** The peer went away (or we gave up): pending and future reads fail. */
  close(err: Error = new RewindError(ErrorCodes.CLOSED, 'NBD peer closed the connection during the handshake')): void {
    this.closedWith ??= err;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(this.closedWith);
  }

  async read(n: number): Promise<Buffer> {
    await this.waitFor(n);
    return this.queue.take(n);
  }

  /** Discard n bytes as they arrive; never holds more than what the socket delivered. */
  async skip(n: number): Promise<void> {
    let left = n;
    while (left > 0) {
      left -= this.queue.skip(left);
      if (left > 0) await this.waitFor(1);
    }
  }

  private waitFor(n: number): Promise<void> {
    if (this.queue.length >= n) return Promise.resolve();
    if (this.closedWith) return Promise.reject(this.closedWith);
    return new Promise((resolve, reject) => {
      this.waiter = { need: n, resolve, reject };
    });
  }

  private wake(): void {
    const w = this.waiter;
    if (w && this.queue.length >= w.need) {
      this.waiter = undefined;
      w.resolve();
    }
  }
}
